import Foundation

/// Runs `on_change.command` after a device's authinfo changes, with `AUTHINFOD_DEVICE_ID` and
/// `AUTHINFOD_FILE` in its environment. Never blocks refreshes: runs happen on their own queue,
/// at most `maximumConcurrent` at once, one per device at a time (a change during a run is
/// coalesced into one more run), each killed after `timeout_seconds`. Failures are logged.
final class ChangeHook: @unchecked Sendable {
    static let maximumConcurrent = 4

    private let configuration: Configuration.OnChange
    private let logger: Logger
    private let queue = DispatchQueue(label: "authinfod.hook")
    private var running = Set<String>()
    private var pending: [String: String] = [:]
    private var waiting: [(String, String)] = []

    init(_ configuration: Configuration.OnChange, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Schedules a run for `device` whose file is `file`.
    func changed(device: String, file: String) {
        queue.async { self.enqueue(device, file) }
    }

    private func enqueue(_ device: String, _ file: String) {
        if running.contains(device) {
            pending[device] = file
        } else if running.count >= Self.maximumConcurrent {
            if !waiting.contains(where: { $0.0 == device }) { waiting.append((device, file)) }
        } else {
            launch(device, file)
        }
    }

    private func launch(_ device: String, _ file: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: configuration.command[0])
        process.arguments = Array(configuration.command.dropFirst())
        process.environment = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "AUTHINFOD_DEVICE_ID": device,
            "AUTHINFOD_FILE": file,
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let started = Date()
        process.terminationHandler = { [weak self] finished in
            guard let hook = self else { return }
            hook.queue.async { hook.finished(device, finished, seconds: Date().timeIntervalSince(started)) }
        }
        do {
            try process.run()
        } catch {
            logger.error("hook_failed", ["device": device, "command": configuration.command[0], "error": "\(error)"])
            return
        }
        running.insert(device)
        let pid = process.processIdentifier
        queue.asyncAfter(deadline: .now() + configuration.timeout) { [weak self] in
            guard let self, process.isRunning else { return }
            self.logger.warning("hook_timeout", ["device": device, "command": self.configuration.command[0], "timeout": self.configuration.timeout])
            kill(pid, SIGTERM)
            self.queue.asyncAfter(deadline: .now() + 2) { if process.isRunning { kill(pid, SIGKILL) } }
        }
    }

    private func finished(_ device: String, _ process: Process, seconds: Double) {
        running.remove(device)
        if process.terminationReason == .exit && process.terminationStatus == 0 {
            logger.debug("hook_ran", ["device": device, "seconds": seconds])
        } else if process.terminationReason == .exit {
            logger.warning("hook_failed", ["device": device, "command": configuration.command[0], "status": Int(process.terminationStatus)])
        } else {
            logger.warning("hook_failed", ["device": device, "command": configuration.command[0], "signal": Int(process.terminationStatus)])
        }
        if let file = pending.removeValue(forKey: device) {
            launch(device, file)
        } else if !waiting.isEmpty {
            let (next, file) = waiting.removeFirst()
            launch(next, file)
        }
    }
}
