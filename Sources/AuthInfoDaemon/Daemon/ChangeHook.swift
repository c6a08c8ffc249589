import FoundationEssentials
import SystemCalls
import Glibc
import Dispatch
import Synchronization

/// Runs `on_change.command` after a device's authinfo or state changes, with
/// `AUTHINFOD_DEVICE_ID`, `AUTHINFOD_FILE` and `AUTHINFOD_STATE` in its environment. Never blocks refreshes: a run is spawned at once and waited for on a thread of its own,
/// at most `maximumConcurrent` at once, one per device at a time (a change during a run is
/// coalesced into one more run), each killed after `timeout_seconds` (with whatever it started).
/// Failures are logged.
///
/// State behind a `Mutex`: runs are started by the refresher's queue, timed out by this hook's
/// timer queue and finished by the thread that waits for each process, all briefly.
final class ChangeHook: Sendable {
    static let maximumConcurrent = 4

    private let configuration: Configuration.OnChange
    private let logger: Logger
    /// Timeouts fire here.
    private let timers = DispatchQueue(label: "authinfod.hook")

    /// One run in progress; `number` tells it apart from a later run of the same device.
    private struct Run {
        let process: HookProcess
        let number: UInt64
        var timedOut = false
    }

    /// What a run is told: the device's published file and its state then.
    struct Change: Sendable {
        let file: String
        let state: String
    }

    private struct State {
        var running: [String: Run] = [:]
        var runs: UInt64 = 0
        var pending: [String: Change] = [:]
        var waiting: [(String, Change)] = []
        var stopped = false
    }

    private let state = Mutex(State())

    init(_ configuration: Configuration.OnChange, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Schedules a run for `device`, whose file is `file` and state `deviceState` (a change
    /// while a run is queued replaces what the queued run will be told).
    func changed(device: String, file: String, state deviceState: DeviceState) {
        let change = Change(file: file, state: deviceState.rawValue)
        state.withLock { state in
            guard !state.stopped else { return }
            if state.running[device] != nil {
                state.pending[device] = change
            } else if state.running.count >= Self.maximumConcurrent {
                if let index = state.waiting.firstIndex(where: { $0.0 == device }) {
                    state.waiting[index].1 = change
                } else {
                    state.waiting.append((device, change))
                }
            } else {
                launch(device, change, &state)
            }
        }
    }

    /// Starts no more runs; those in progress finish or time out (a reload changed the hook).
    func retire() {
        state.withLock { Self.retire(&$0) }
    }

    /// Starts no more runs and stops the ones in progress (SIGTERM to each run's process group).
    func stop() {
        state.withLock { state in
            Self.retire(&state)
            for run in state.running.values { run.process.signal(SIGTERM) }
        }
    }

    private static func retire(_ state: inout State) {
        state.stopped = true
        state.pending.removeAll()
        state.waiting.removeAll()
    }

    /// Spawns the command for `device` (with the lock held: posix_spawn returns at once).
    private func launch(_ device: String, _ change: Change, _ state: inout State) {
        let environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "AUTHINFOD_DEVICE_ID": device,
            "AUTHINFOD_FILE": change.file,
            "AUTHINFOD_STATE": change.state,
        ]
        let process: HookProcess
        do {
            process = try HookProcess.spawn(configuration.command, environment: environment)
        } catch {
            logger.error("hook_failed", ["device": device, "command": configuration.command[0], "error": error.description])
            return
        }
        state.runs += 1
        let number = state.runs
        state.running[device] = Run(process: process, number: number)
        let started = Date()
        DetachedThread.start { [self] in
            process.waitUntilEnded()
            finished(device, seconds: Date().timeIntervalSince(started))
        }
        timers.asyncAfter(deadline: .now() + configuration.timeout) { [weak self] in
            self?.timeOut(device, number: number, process: process)
        }
    }

    private func timeOut(_ device: String, number: UInt64, process: HookProcess) {
        let current = state.withLock { state -> Bool in
            guard state.running[device]?.number == number else { return false }
            state.running[device]?.timedOut = true
            return true
        }
        guard current else { return }
        logger.warning("hook_timeout", ["device": device, "command": configuration.command[0], "timeout": configuration.timeout])
        process.signal(SIGTERM)
        timers.asyncAfter(deadline: .now() + 2) { [self] in
            if state.withLock({ $0.running[device]?.number == number }) { process.signal(SIGKILL) }
        }
    }

    private func finished(_ device: String, seconds: Double) {
        state.withLock { state in
            guard let run = state.running.removeValue(forKey: device) else { return }
            // The leader is not reaped yet, so its group id is still its own: whatever a timed-out
            // hook started and left behind goes too.
            if run.timedOut { run.process.signal(SIGKILL) }
            switch run.process.reap() {
            case .exited(status: 0):
                logger.debug("hook_ran", ["device": device, "seconds": seconds])
            case .exited(let status):
                logger.warning("hook_failed", ["device": device, "command": configuration.command[0], "status": Int(status)])
            case .signaled(let signal):
                logger.warning("hook_failed", ["device": device, "command": configuration.command[0], "signal": Int(signal)])
            case .unknown(let error):
                logger.warning("hook_failed", ["device": device, "command": configuration.command[0], "error": error])
            }
            guard !state.stopped else { return }
            if let file = state.pending.removeValue(forKey: device) {
                launch(device, file, &state)
            } else if !state.waiting.isEmpty {
                let (next, file) = state.waiting.removeFirst()
                launch(next, file, &state)
            }
        }
    }
}
