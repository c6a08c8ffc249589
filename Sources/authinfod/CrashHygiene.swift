import CLinux
import FoundationEssentials
import Glibc
import SystemCalls

/// What a crash of the daemon may leave behind: nothing that holds its memory (the merchant key,
/// tokens, authinfo). No core file (RLIMIT_CORE 0, and not dumpable, which also keeps other
/// processes of the same user out of /proc/PID/mem), and no Swift backtrace, which prints
/// registers and the memory around them into the log.
enum CrashHygiene {
    /// The value that turns the Swift runtime's backtracer off; it is read when the process
    /// starts, so `apply` re-executes the daemon once with it set.
    static let backtraceSetting = "enable=no"

    static func apply() {
        if ProcessInfo.processInfo.environment["SWIFT_BACKTRACE"] != backtraceSetting {
            setenv("SWIFT_BACKTRACE", backtraceSetting, 1)
            // Same binary, same arguments; only the environment changed. On failure the daemon
            // runs on with core dumps off but the backtracer on, and says so.
            let arguments = CommandLine.unsafeArgv
            execv("/proc/self/exe", arguments)
            writeError("warning: cannot re-execute with SWIFT_BACKTRACE=\(backtraceSetting) (\(SystemError.last("execv").reason)); a crash may print memory to the log")
        }
        if authinfod_forbid_core_dumps() != 0 {
            writeError("warning: cannot turn core dumps off (\(SystemError.last("setrlimit/prctl").reason)); a crash may write the process memory to disk")
        }
    }
}
