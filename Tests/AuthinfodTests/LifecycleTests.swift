import Foundation
import Testing

@Suite struct LifecycleTests {
    /// SIGTERM ends the process with exit 0 within 5 s while everything that could hold it up
    /// does: a hook that hangs, a gateway call that hangs, clients holding connections on both
    /// sockets, and a device whose raw_data_file is a FIFO nobody writes to.
    @Test func sigtermStopsWithinFiveSecondsWhateverIsHanging() throws {
        let site = try Site()
        let hook = try site.directory.write("hook.sh", "#!/bin/sh\ntouch \(site.directory.file("hook.started"))\nsleep 60\n", mode: 0o755)
        mkfifo(site.directory.file("raw.fifo"), 0o600)
        var config = site.fastConfig(devices: 3)
        config["api"] = ["base_url": site.simulator.baseURL.absoluteString, "timeout_seconds": 60]
        config["on_change"] = ["command": [hook], "timeout_seconds": 60]
        config["devices"] = [["device_id": "dev-0001", "raw_data": "RAW-1"], ["device_id": "dev-0002", "raw_data": "RAW-2"],
                             ["device_id": "dev-0003", "raw_data_file": "raw.fifo"]]
        site.simulator.delay(deviceID: "dev-0002", seconds: 60)
        try site.writeConfig(config)
        let daemon = try site.start()
        daemon.wait(10, "the hook hanging") { FileManager.default.fileExists(atPath: site.directory.file("hook.started")) }
        daemon.wait(10, "dev-0002's call in flight") { site.simulator.requests().contains { $0.deviceID == "dev-0002" } }
        let held = Wire.unixStatus(site.directory.file("authinfod.sock"), "/healthz")
        #expect(held == 200)
        // A client that holds the Unix socket mid-request.
        let holder = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = site.directory.file("authinfod.sock")
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(holder, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        _ = Array("GET /healthz HTTP/1.1\r\nHost: x".utf8).withUnsafeBytes { send(holder, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Thread.sleep(forTimeInterval: 0.3)

        let (status, seconds) = daemon.terminate()
        #expect(status == 0)
        #expect(seconds < 5, "stopped in \(seconds) s")
        #expect(daemon.log.contains("event=stop"))
        #expect(daemon.log.contains("raw_data_file") && daemon.log.contains("is not a regular file"), "the FIFO is refused, not waited on")
    }

    /// Start runs in order (cache → published files → listeners → READY) and stop in reverse.
    @Test func startAndStopRunInOrder() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 2))
        let daemon = try site.start()
        daemon.wait(10, "published") { site.allPublished(2) }
        #expect(daemon.terminate().status == 0)
        let events = daemon.log.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("event=") }.map { String($0.dropFirst(6)) }
        }
        let order = ["start", "published", "listening", "ready", "refreshed", "stop"].map { events.firstIndex(of: $0) ?? -1 }
        #expect(!order.contains(-1) && order == order.sorted(), "\(events)")
    }

    /// A crash leaves no copy of the daemon's memory: started where core dumps are allowed and
    /// would land in its folder, `kill -SEGV` leaves no core file there and no register or
    /// memory dump in the log. (Started with a low soft descriptor limit, it also raises that
    /// to the hard limit.)
    @Test func aCrashLeavesNoCoreFileAndNoMemoryInTheLog() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 1))
        let logPath = site.directory.file("daemon.log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -c unlimited && ulimit -Sn 1024 && cd \"$1\" && exec \"$2\" run --config \"$3\"", "sh",
                             site.directory.path, Binary.path, site.configPath]
        process.standardError = FileHandle(forWritingAtPath: logPath)
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = nil
        process.environment = environment
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let log = { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(10)
        while !log().contains("event=ready") && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        try #require(log().contains("event=ready"), "\(log())")
        let pid = process.processIdentifier
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max core file size") && $0.split(separator: " ").dropFirst(4).prefix(2) == ["0", "0"] },
                "\(limits)")
        let files = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?.split(separator: " ").dropFirst(3).prefix(2)
        #expect(files.map { $0.first == $0.last } == true, "the soft descriptor limit is raised to the hard one: \(String(describing: files))")
        let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(environ.split(separator: "\0").contains("SWIFT_BACKTRACE=enable=no"))

        kill(pid, SIGSEGV)
        let exitDeadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < exitDeadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            Issue.record("the daemon did not die of SIGSEGV within 20 s (a backtracer stuck on it?); log:\n\(log().suffix(1500))")
            kill(pid, SIGKILL)
        }
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGSEGV)
        let left = try FileManager.default.contentsOfDirectory(atPath: site.directory.path)
        #expect(!left.contains { $0.hasPrefix("core") }, "a core file was written: \(left)")
        #expect(!log().contains("0x0000"), "the log holds a register or memory dump:\n\(log().suffix(2000))")
    }
}
