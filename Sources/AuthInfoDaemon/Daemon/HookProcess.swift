import CLinux
import Glibc
import SystemCalls

/// Why a hook could not be started.
struct HookSpawnError: Error, CustomStringConvertible {
    let description: String
}

/// One run of the `on_change` command, started with `posix_spawn` (not Foundation's `Process`,
/// which closes descriptors of its own from other threads; in a daemon holding a database, a
/// socket pool and published files, a descriptor closed twice can land on any of them).
///
/// The child gets /dev/null as stdin, stdout and stderr, no other descriptor of the daemon,
/// default signal dispositions with nothing blocked, and a process group of its own, so a
/// timeout stops the hook and whatever it started.
///
/// The pid stays reserved until `reap()`: `waitUntilEnded()` does not reap, so a signal sent
/// before `reap()` can never reach a process that reused the number.
struct HookProcess: Sendable {
    let pid: pid_t

    /// How the run ended.
    enum Ending: Equatable {
        case exited(status: Int32)
        case signaled(Int32)
        /// The process could not be waited for (the reason).
        case unknown(String)
    }

    /// Starts `command[0]` (an absolute path) with `command[1...]` as its arguments and exactly
    /// `environment`.
    static func spawn(_ command: [String], environment: [String: String]) throws(HookSpawnError) -> HookProcess {
        let arguments = command.map { strdup($0) } + [nil]
        let variables = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in arguments { free(pointer) }
            for pointer in variables { free(pointer) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t(), none = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        var pid: pid_t = 0
        let result = posix_spawn(&pid, command[0], &actions, &attributes, arguments, variables)
        guard result == 0 else { throw HookSpawnError(description: "cannot start \(command[0]): \(SystemError.reason(result))") }
        return HookProcess(pid: pid)
    }

    /// Blocks until the process has ended, leaving it unreaped.
    func waitUntilEnded() {
        var info = siginfo_t()
        _ = try? SystemCall.run("waitid") { waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) }
    }

    /// Reaps the ended process and says how it ended.
    func reap() -> Ending {
        var status: Int32 = 0
        do {
            try SystemCall.run("waitpid") { waitpid(pid, &status, 0) }
        } catch {
            return .unknown(error.description)
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (they are macros).
        return status & 0x7F == 0 ? .exited(status: (status >> 8) & 0xFF) : .signaled(status & 0x7F)
    }

    /// Sends `signal` to the hook's process group.
    func signal(_ signal: Int32) {
        kill(-pid, signal)
    }
}
