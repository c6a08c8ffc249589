import Foundation

/// Runs `on_change.command` after a device's authinfo changes, with `AUTHINFOD_DEVICE_ID` and
/// `AUTHINFOD_FILE` in its environment. Never blocks refreshes: runs happen on their own queue,
/// at most `maximumConcurrent` at once, one per device at a time (a change during a run is
/// coalesced into one more run), each killed after `timeout_seconds` (with whatever it started).
/// Failures are logged.
final class ChangeHook: @unchecked Sendable {
    static let maximumConcurrent = 4

    private let configuration: Configuration.OnChange
    private let logger: Logger
    private let queue = DispatchQueue(label: "authinfod.hook")

    /// One run in progress; `number` tells it apart from a later run of the same device.
    private struct Run {
        let process: HookProcess
        let number: UInt64
        var timedOut = false
    }

    private var running: [String: Run] = [:]
    private var runs: UInt64 = 0
    private var pending: [String: String] = [:]
    private var waiting: [(String, String)] = []
    private var stopped = false

    init(_ configuration: Configuration.OnChange, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Schedules a run for `device` whose file is `file`.
    func changed(device: String, file: String) {
        queue.async { self.enqueue(device, file) }
    }

    /// Starts no more runs; those in progress finish or time out (a reload changed the hook).
    func retire() {
        queue.sync { retireOnQueue() }
    }

    /// Starts no more runs and stops the ones in progress (SIGTERM to each run's process group).
    func stop() {
        queue.sync {
            retireOnQueue()
            for run in running.values { run.process.signal(SIGTERM) }
        }
    }

    private func retireOnQueue() {
        stopped = true
        pending.removeAll()
        waiting.removeAll()
    }

    private func enqueue(_ device: String, _ file: String) {
        guard !stopped else { return }
        if running[device] != nil {
            pending[device] = file
        } else if running.count >= Self.maximumConcurrent {
            if !waiting.contains(where: { $0.0 == device }) { waiting.append((device, file)) }
        } else {
            launch(device, file)
        }
    }

    private func launch(_ device: String, _ file: String) {
        let environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "AUTHINFOD_DEVICE_ID": device,
            "AUTHINFOD_FILE": file,
        ]
        let process: HookProcess
        do {
            process = try HookProcess.spawn(configuration.command, environment: environment)
        } catch {
            logger.error("hook_failed", ["device": device, "command": configuration.command[0], "error": error.description])
            return
        }
        runs += 1
        let number = runs
        running[device] = Run(process: process, number: number)
        let started = Date()
        Thread.detachNewThread { [self] in
            process.waitUntilEnded()
            queue.async { self.finished(device, seconds: Date().timeIntervalSince(started)) }
        }
        queue.asyncAfter(deadline: .now() + configuration.timeout) { [weak self] in
            guard let self, self.running[device]?.number == number else { return }
            self.running[device]?.timedOut = true
            self.logger.warning("hook_timeout", ["device": device, "command": self.configuration.command[0], "timeout": self.configuration.timeout])
            process.signal(SIGTERM)
            self.queue.asyncAfter(deadline: .now() + 2) {
                if self.running[device]?.number == number { process.signal(SIGKILL) }
            }
        }
    }

    private func finished(_ device: String, seconds: Double) {
        guard let run = running.removeValue(forKey: device) else { return }
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
        guard !stopped else { return }
        if let file = pending.removeValue(forKey: device) {
            launch(device, file)
        } else if !waiting.isEmpty {
            let (next, file) = waiting.removeFirst()
            launch(next, file)
        }
    }
}
