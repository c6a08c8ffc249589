import Foundation
import Testing
@testable import AuthInfoDaemon

/// A fake systemd notification socket: a datagram socket that records every message.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [(message: String, at: Date)] = []

    init(path: String) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count > 0 {
                    let message = String(decoding: buffer[0..<count], as: UTF8.self)
                    lock.withLock { received.append((message, Date())) }
                } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    return
                }
            }
        }
        thread.start()
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    var messages: [(message: String, at: Date)] { lock.withLock { received } }

    func count(_ prefix: String) -> Int { messages.filter { $0.message.contains(prefix) }.count }
}

@Suite struct SystemdTests {
    @Test func notifiesReadyWatchdogReloadingAndStopping() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 3))
        let notify = NotifySocket(path: site.directory.file("notify.sock"))
        let daemon = try site.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        daemon.wait(10, "READY=1") { notify.count("READY=1") == 1 }
        // READY comes after the cache is loaded and the listeners are up: the socket answers now.
        #expect(try Wire.curl(["--unix-socket", site.directory.file("authinfod.sock"), "http://localhost/healthz"]).status == 200)
        #expect(notify.messages.first { $0.message.contains("READY=1") }?.message.contains("STATUS=") == true)

        let watchdogsBefore = notify.count("WATCHDOG=1")
        Thread.sleep(forTimeInterval: 2)
        #expect(notify.count("WATCHDOG=1") - watchdogsBefore >= 3, "WATCHDOG_USEC=1s asks for a keep-alive every 0.5 s")

        kill(daemon.process.processIdentifier, SIGHUP)
        daemon.wait(5, "RELOADING then READY") { notify.count("READY=1") == 2 }
        let reloading = try #require(notify.messages.first { $0.message.contains("RELOADING=1") })
        #expect(reloading.message.contains("MONOTONIC_USEC="))
        let (status, seconds) = daemon.terminate()
        #expect(status == 0 && seconds < 5)
        #expect(notify.count("STOPPING=1") == 1)
    }

    @Test func sighupAppliesAnAddedDeviceAndKeepsRunningOnABrokenConfig() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 2))
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(10, "two devices") { site.allPublished(2) }

        try site.writeConfig(site.fastConfig(devices: 3))
        kill(daemon.process.processIdentifier, SIGHUP)
        daemon.wait(10, "the added device published") { site.allPublished(3) }
        #expect(daemon.log.contains("event=reload result=applied devices=3 added=1 removed=0 changed=0"))

        try site.directory.write("authinfod.json", "{\"merchant\": ", mode: 0o640)
        kill(daemon.process.processIdentifier, SIGHUP)
        daemon.wait(5, "the refusal logged") { daemon.log.contains("event=reload_refused") }
        #expect(daemon.process.isRunning)
        #expect(try Wire.curl(["--unix-socket", site.directory.file("authinfod.sock"), "http://localhost/v1/devices/dev-0003/authinfo"]).status == 200)

        var fewer = site.fastConfig(devices: 1)
        fewer["log"] = ["level": "info"]
        try site.writeConfig(fewer)
        kill(daemon.process.processIdentifier, SIGHUP)
        daemon.wait(5, "devices removed") { site.published("dev-0002") == nil && site.published("dev-0003") == nil }
        #expect(site.published("dev-0001") != nil)
    }

    @Test func underJournaldEveryLineStartsWithItsPriority() throws {
        let site = try Site()
        site.simulator.reject(deviceID: "dev-0002")
        try site.writeConfig(site.fastConfig(devices: 2))
        let daemon = try site.start(environment: ["JOURNAL_STREAM": "log-file"])
        daemon.wait(10, "a warning or error logged") { daemon.log.contains("event=rejected") && site.allPublished(1) }
        #expect(daemon.terminate().status == 0)
        let lines = daemon.log.split(separator: "\n")
        #expect(lines.count >= 5)
        for line in lines { #expect(line.hasPrefix("<6>") || line.hasPrefix("<4>") || line.hasPrefix("<3>") || line.hasPrefix("<7>"), "\(line)") }
        #expect(lines.contains { $0.hasPrefix("<3>level=error event=rejected") })
        #expect(!daemon.log.contains("ts="), "journald adds its own timestamps")
    }
}

@Suite struct SystemdNotifierTests {
    @Test func notifiesAnAbstractSocketAndHonoursWatchdogPID() throws {
        let name = "authinfod-test-\(getpid())-\(#line)"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw[0] = 0
            for (index, byte) in name.utf8.enumerated() { raw[index + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.utf8.count)
        #expect(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } } == 0)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": String(getpid())])
        #expect(notifier.watchdogInterval == 1)
        notifier.notify("READY=1\nSTATUS=ok")
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = recv(fd, &buffer, buffer.count, 0)
        #expect(count > 0 && String(decoding: buffer[0..<max(0, count)], as: UTF8.self) == "READY=1\nSTATUS=ok")

        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"]).watchdogInterval == nil, "the watchdog belongs to another process")
        #expect(!SystemdNotifier(environment: [:]).isActive)
    }
}
