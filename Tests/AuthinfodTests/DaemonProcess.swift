import Foundation
import Testing

/// The real `authinfod run` as a child process, its stderr (the log) in a file.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String

    /// `launcher` runs the binary (its path and arguments follow the launcher's), e.g. to start it
    /// in a namespace of its own.
    init(config: String, logPath: String, environment: [String: String] = [:], launcher: [String] = []) throws {
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        let command = launcher + [Binary.path, "run", "--config", config]
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        var env = ProcessInfo.processInfo.environment
        env["JOURNAL_STREAM"] = nil
        env["NOTIFY_SOCKET"] = nil
        env["WATCHDOG_USEC"] = nil
        for (key, value) in environment { env[key] = value }
        if env["JOURNAL_STREAM"] == "log-file" {
            var status = stat()
            fstat(log.fileDescriptor, &status)
            env["JOURNAL_STREAM"] = "\(status.st_dev):\(status.st_ino)"
        }
        process.environment = env
        process.standardError = log
        process.standardOutput = log
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// A number from the process's `/proc/PID/status` (`Threads`, `VmRSS` in KiB, …), -1 if absent.
    func status(_ key: String) -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix(key + ":") } ?? ""
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? -1
    }

    /// Polls `condition` every 50 ms for up to `timeout` seconds.
    @discardableResult
    func wait(_ timeout: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        if condition() { return true }
        Issue.record("timed out after \(timeout) s waiting for \(what); log:\n\(log.suffix(3000))", sourceLocation: sourceLocation)
        return false
    }

    /// Polls `condition` every 50 ms for up to `timeout` seconds without holding a thread of the
    /// test runner's pool (long waits there starve the async tests running beside).
    @discardableResult
    func until(_ timeout: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
               _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        if condition() { return true }
        Issue.record("timed out after \(timeout) s waiting for \(what); log:\n\(log.suffix(3000))", sourceLocation: sourceLocation)
        return false
    }

    /// SIGTERM, then the exit status and how long stopping took.
    func terminate() -> (status: Int32, seconds: Double) {
        let start = Date()
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return (process.terminationStatus, Date().timeIntervalSince(start))
    }

    func sigkill() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

extension Site {
    /// Fast settings for end-to-end tests.
    func fastConfig(devices: Int, interval: Double = 30, ttl: Double = 60, backoff: (Double, Double) = (0.2, 1),
                    rate: Double = 100, concurrency: Int = 8) -> [String: Any] {
        config(devices: devices, extra: [
            "refresh": ["interval_seconds": interval, "authinfo_ttl_seconds": ttl, "jitter_fraction": 0.1,
                        "backoff_min_seconds": backoff.0, "backoff_max_seconds": backoff.1,
                        "max_requests_per_second": rate, "max_concurrent_requests": concurrency],
            "log": ["level": "debug"],
        ])
    }

    func start(environment: [String: String] = [:], launcher: [String] = []) throws -> DaemonProcess {
        try DaemonProcess(config: configPath, logPath: directory.file("daemon.log"), environment: environment, launcher: launcher)
    }

    /// Fills the `count` devices of the config already written with the real binary, which then
    /// stops cleanly: a cache to start from. Returns each device's published authinfo, in id order.
    @discardableResult
    func fillAndStop(_ count: Int) throws -> [String?] {
        let filler = try start()
        filler.wait(20, "\(count) devices published") { allPublished(count) }
        let values = deviceIDs(count).map { published($0)?["authinfo"] as? String }
        #expect(filler.terminate().status == 0)
        return values
    }

    /// The published document of `device`, parsed, or nil.
    func published(_ device: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: directory.file("devices/\(device).json")) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    func deviceIDs(_ count: Int) -> [String] { (1...count).map { String(format: "dev-%04d", $0) } }

    /// Whether every one of `count` devices has a published file with an authinfo the gateway issued to it.
    func allPublished(_ count: Int) -> Bool {
        deviceIDs(count).allSatisfy { id in
            guard let value = published(id)?["authinfo"] as? String else { return false }
            return simulator.didIssue(value, to: id)
        }
    }
}
