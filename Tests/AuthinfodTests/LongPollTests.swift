import Foundation
import Synchronization
import Testing
@testable import AuthInfoDaemon

/// Change notification without polling: ETags, If-None-Match and `?wait=` long-polls against
/// the real daemon, with curl and with thousands of raw connections.
@Suite struct LongPollTests {
    static let path = "/v1/devices/dev-0001/authinfo"
    /// Refresh settings under which no refresh comes during a test of a few minutes.
    static var quietRefresh: [String: Any] { ["refresh": ["interval_seconds": 600, "authinfo_ttl_seconds": 1200, "backoff_min_seconds": 0.2,
                                                          "backoff_max_seconds": 1, "max_requests_per_second": 100, "max_concurrent_requests": 8]] }

    /// The ETag field of a curl answer printed with `-i`.
    static func etag(_ answer: String) -> String? {
        answer.split(separator: "\r\n").first { $0.lowercased().hasPrefix("etag: ") }.map { String($0.dropFirst(6)) }
    }

    /// A reload that reorders the devices and removes one in the middle: the devices kept keep
    /// their values (same tags) and their waits; the removed one is unknown and its waits end
    /// `.gone`; a later value still wakes the waits of a kept one.
    @Test func servedValuesAndWaitsFollowAReorderedTable() throws {
        let served = ServedDocuments(monotonic: { 0 })
        served.configure(devices: .named(["a", "b", "c"]))
        func entry(_ id: String, _ value: String) -> ServedDocuments.Entry {
            let document = AuthInfoDocument(deviceID: id, authinfo: value, fetchedAt: 1, expiresAt: 100)
            return ServedDocuments.Entry(document: document, expiresAt: 100, dueAt: 50, failing: false)
        }
        for id in ["a", "b", "c"] { served.set(id, entry(id, "v1-\(id)")) }
        let tags = ["a", "b", "c"].map { (served.lookup($0) ?? nil)?.etag }
        let outcomes = Mutex<[String: String]>([:])
        for id in ["b", "c"] {
            served.wait(for: id, unless: (served.lookup(id) ?? nil)?.etag, seconds: 100) { outcome in
                outcomes.withLock { $0[id] = switch outcome { case .gone: "gone"; case .unchanged: "unchanged"; case .changed: "changed" } }
            }
        }
        #expect(served.waitingCount == 2)
        served.configure(devices: .named(["c", "a"]))
        #expect(served.lookup("b") == nil, "b is no longer configured")
        #expect((served.lookup("a") ?? nil)?.etag == tags[0] && (served.lookup("c") ?? nil)?.etag == tags[2])
        #expect(outcomes.withLock { $0 } == ["b": "gone"] && served.waitingCount == 1)
        served.set("c", entry("c", "v2-c"))
        #expect(outcomes.withLock { $0 } == ["b": "gone", "c": "changed"] && served.waitingCount == 0)
        let body = String(decoding: (served.lookup("c") ?? nil)?.body(at: 0) ?? [], as: UTF8.self)
        #expect(body.contains(#""authinfo":"v2-c""#) && body.hasSuffix(#""state":"fresh"}"#), "\(body)")
    }

    @Test func anETagGives304UntilTheValueChanges() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let first = try api.tcp(Self.path, token: APISite.kioskToken, ["-i"])
        #expect(first.status == 200)
        let tag = try #require(Self.etag(first.body), "\(first.body)")
        #expect(tag.hasPrefix("W/\""))
        let again = try api.tcp(Self.path, token: APISite.kioskToken, ["-i", "-H", "If-None-Match: \(tag)"])
        #expect(again.status == 304 && Self.etag(again.body) == tag, "\(again.body)")
        #expect(try api.tcp(Self.path, token: APISite.kioskToken, ["-H", "If-None-Match: \"other\", \(tag)"]).status == 304)
        #expect(try api.tcp(Self.path, token: APISite.kioskToken, ["-H", "If-None-Match: *"]).status == 304)
        #expect(try api.tcp(Self.path + "?wait=301", token: APISite.kioskToken).status == 400)
        #expect(try api.tcp(Self.path + "?wait=soon", token: APISite.kioskToken).status == 400)

        let issued = api.site.simulator.issuedAuthInfo(deviceID: "dev-0001").count
        #expect(try api.tcp("/v1/devices/dev-0001/refresh", token: APISite.adminToken, ["-X", "POST"]).status == 202)
        api.daemon.wait(10, "the refresh") { api.site.simulator.issuedAuthInfo(deviceID: "dev-0001").count > issued }
        api.daemon.wait(5, "the new value served") { (try? api.tcp(Self.path, token: APISite.kioskToken, ["-H", "If-None-Match: \(tag)"]).status) == 200 }
        let changed = try api.tcp(Self.path, token: APISite.kioskToken, ["-i", "-H", "If-None-Match: \(tag)"])
        #expect(changed.status == 200 && Self.etag(changed.body) != tag)
    }

    /// A value's tag is made from what its document says, so it is the same after a restart: a
    /// terminal that holds it is answered 304, not sent the same value again.
    @Test func anETagIsTheSameAfterARestart() throws {
        let api = try APISite(devices: 1)
        let tag = try #require(Self.etag(try api.unix(Self.path, ["-i"]).body))
        #expect(api.daemon.terminate().status == 0)
        let again = try api.site.start()
        defer { _ = again.terminate() }
        again.wait(20, "ready") { again.log.contains("event=ready") }
        let answer = try api.unix(Self.path, ["-i", "-H", "If-None-Match: \(tag)"])
        #expect(answer.status == 304 && Self.etag(answer.body) == tag, "\(answer.body)")
    }

    @Test func aLongPollIsAnsweredWithinASecondOfARefreshAndTimesOutWith304() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let tag = try #require(Self.etag(try api.unix(Self.path, ["-i"]).body))

        let started = Date()
        let timedOut = try api.unix(Self.path + "?wait=1", ["-H", "If-None-Match: \(tag)"])
        let waited = Date().timeIntervalSince(started)
        #expect(timedOut.status == 304 && waited >= 0.9 && waited < 2, "304 after the 1 s wait, not at once: \(waited) s")

        // A terminal long-polls over TCP; a refresh lands 1 s later.
        let poll = Process()
        poll.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        poll.arguments = ["-s", "-i", "--max-time", "30", "-H", "Authorization: Bearer \(APISite.kioskToken)", "-H", "If-None-Match: \(tag)",
                          api.url + Self.path + "?wait=30"]
        let out = Pipe()
        poll.standardOutput = out
        try poll.run()
        Thread.sleep(forTimeInterval: 1)
        #expect(poll.isRunning, "the long-poll is held while the value is unchanged")
        let issued = api.site.simulator.issuedAuthInfo(deviceID: "dev-0001")
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        let asked = Date()
        let answer = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        poll.waitUntilExit()
        let latency = Date().timeIntervalSince(asked)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
        #expect(latency < 1.5, "answered \(latency) s after the refresh was asked for (the refresh itself included)")
        let fresh = api.site.simulator.issuedAuthInfo(deviceID: "dev-0001").filter { !issued.contains($0) }
        #expect(fresh.contains { answer.contains($0) }, "the long-poll got the new value")
        #expect(Self.etag(answer) != tag)
    }

    /// A long-poll on a device that a reload removes ends 404 `unknown_device`, whether the
    /// device had a value or not (found by a review: one with a value was answered 503
    /// `no_authinfo_yet`, as if the device were still configured and waiting for its first value).
    @Test func aReloadThatRemovesADeviceAnswersItsLongPolls404() throws {
        let api = try APISite(devices: 2, extra: Self.quietRefresh)
        defer { _ = api.daemon.terminate() }
        let path = "/v1/devices/dev-0002/authinfo"
        let tag = try #require(Self.etag(try api.unix(path, ["-i"]).body))
        let poll = Process()
        poll.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        poll.arguments = ["-s", "-i", "--max-time", "30", "--unix-socket", api.socketPath, "-H", "If-None-Match: \(tag)",
                          "http://localhost" + path + "?wait=30"]
        let out = Pipe()
        poll.standardOutput = out
        try poll.run()
        api.daemon.wait(5, "the long-poll waiting") { Wire.unixBody(api.socketPath, "/metrics").contains("authinfod_long_polls_waiting 1") }

        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: api.site.configPath))) as! [String: Any]
        config["devices"] = (config["devices"] as! [[String: Any]]).filter { $0["device_id"] as? String == "dev-0001" }
        try api.site.writeConfig(config)
        let reload = try Binary.run(["reload", "--config", api.site.configPath])
        #expect(reload.status == 0, "\(reload.stderr)")
        let answer = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        poll.waitUntilExit()
        #expect(answer.hasPrefix("HTTP/1.1 404") && answer.contains("unknown_device"), "\(answer.prefix(300))")
        #expect(try api.unix(path).status == 404)
    }

    /// 5,000 terminals long-polling at once are 5,000 entries in a list, not threads: the daemon's
    /// thread count does not move and it grows by under 50 MB; one refresh answers them all.
    @Test func fiveThousandLongPollsCostNoThreadsAndLittleMemory() throws {
        try ConnectionCapTests.raiseOpenFileLimit()
        let api = try APISite(devices: 1, extra: Self.quietRefresh, listen: ["max_connections": 6000])
        defer { _ = api.daemon.terminate() }
        let tag = try #require(Self.etag(try api.unix(Self.path, ["-i"]).body))
        let status = api.daemon.status
        let (threadsBefore, rssBefore) = (status("Threads"), status("VmRSS"))
        let request = Array("GET \(Self.path)?wait=120 HTTP/1.1\r\nAuthorization: Bearer \(APISite.kioskToken)\r\nIf-None-Match: \(tag)\r\n\r\n".utf8)
        var polls: [Int32] = []
        defer { for fd in polls { close(fd) } }
        for index in 0..<5000 {
            // 64 per address (the default per-address cap): 79 loopback addresses.
            let fd = try Wire.connect(port: api.port, from: "127.0.1.\(index / 64 + 1)")
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            polls.append(fd)
        }
        api.daemon.wait(20, "5,000 waiting") {
            Wire.unixBody(api.socketPath, "/metrics").contains("authinfod_long_polls_waiting 5000")
        }
        let (threadsDuring, rssDuring) = (status("Threads"), status("VmRSS"))
        print("5,000 long-polls: threads \(threadsBefore) → \(threadsDuring), RSS \(rssBefore / 1024) → \(rssDuring / 1024) MB")
        #expect(threadsDuring <= threadsBefore + 2, "threads \(threadsBefore) → \(threadsDuring) with 5,000 long-polls")
        #expect(rssDuring - rssBefore < 50 * 1024, "RSS grew by \(rssDuring - rssBefore) KiB for 5,000 long-polls")

        #expect(Wire.unixStatus(api.socketPath, "/v1/devices/dev-0001/refresh", method: "POST") == 202)
        var answered = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        for fd in polls where recv(fd, &buffer, buffer.count, 0) > 12 && buffer.starts(with: Array("HTTP/1.1 200".utf8)) { answered += 1 }
        #expect(answered == 5000, "\(answered) of 5,000 long-polls got the new value")
        #expect(api.daemon.process.isRunning)
    }
}
