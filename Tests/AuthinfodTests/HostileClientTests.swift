import Foundation
import Testing

/// What a client on the LAN can do to the real daemon, with real sockets.
@Suite struct HostileClientTests {
    /// A client pipelines 50,000 requests without reading an answer, then resets the
    /// connection: the daemon closes it from inside its own event handling and must survive.
    @Test func aPipelinedFloodEndedByAResetDoesNotCrashTheDaemon() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        for _ in 0..<3 {
            let request = "GET / HTTP/1.1\r\n\r\n"
            let (fd, sent) = try Wire.pipeline(port: api.port, request, upTo: 50_000 * request.utf8.count, seconds: 3)
            #expect(sent > 0)
            // Let the daemon take in what it will, so its answers wait on a full socket.
            Thread.sleep(forTimeInterval: 1)
            // SO_LINGER with a zero timeout: close sends RST instead of FIN.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close(fd)
            Thread.sleep(forTimeInterval: 0.3)
            try #require(api.daemon.process.isRunning, "the daemon crashed; log:\n\(api.daemon.log.suffix(2000))")
        }
        #expect(try api.unix("/healthz").status == 200)
        #expect(try api.tcp("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken).status == 200)
    }

    /// Refused LAN requests are logged as auth_failed with the client's address and the
    /// reason, at most once per address every 10 s, and all counted by reason; never the token.
    @Test func refusedRequestsAreLoggedOncePerAddressAndCountedByReason() throws {
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        let guess = "guessed-token-0000000000000000"
        for _ in 0..<20 { _ = try api.tcp("/v1/devices/dev-0001/authinfo", token: guess) }
        for _ in 0..<3 { _ = try api.tcp("/v1/devices/dev-0001/authinfo", token: nil) }
        let fromOther = Wire.raw(port: api.port, Array("GET /v1/status HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
        #expect(fromOther.hasPrefix("HTTP/1.1 401 "))
        let outOfScope = try KeepAliveConnection(tcpPort: api.port, from: "127.0.0.2")
        #expect(outOfScope.get("/v1/devices/dev-0002/authinfo", token: APISite.kioskToken) == 403)
        #expect(outOfScope.get("/metrics", token: APISite.kioskToken) == 403)

        let lines = api.daemon.log.split(separator: "\n").filter { $0.contains("event=auth_failed") }
        #expect(lines.filter { $0.contains("client=127.0.0.1 ") }.count == 1, "\(lines)")
        #expect(lines.filter { $0.contains("client=127.0.0.2 ") }.count == 1, "\(lines)")
        #expect(lines.first?.contains("reason=invalid_token") == true, "\(lines)")
        #expect(!api.daemon.log.contains(guess) && !api.daemon.log.contains(APISite.kioskToken), "tokens are never logged")
        let metrics = try api.unix("/metrics").body
        #expect(metrics.contains("authinfod_auth_failures_total{reason=\"invalid_token\"} 20"), "\(metrics.suffix(600))")
        #expect(metrics.contains("authinfod_auth_failures_total{reason=\"missing_token\"} 4"))
        #expect(metrics.contains("authinfod_auth_failures_total{reason=\"out_of_scope\"} 1"))
        #expect(metrics.contains("authinfod_auth_failures_total{reason=\"not_admin\"} 1"))
    }

    /// A client that pipelines requests and never reads the answers holds at most a bounded
    /// buffer of the daemon's memory (the daemon stops reading it), and one that reads its
    /// answers at a trickle is cut when the answers' deadline passes; others are served
    /// throughout.
    @Test func aClientThatDoesNotReadItsAnswersIsHeldBackThenCut() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let pid = api.daemon.process.processIdentifier
        let rss = { () -> Int in
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        let before = rss()
        let request = "GET /v1/devices/dev-0001/authinfo HTTP/1.1\r\nAuthorization: Bearer \(APISite.kioskToken)\r\n\r\n"
        let (fd, sent) = try Wire.pipeline(port: api.port, request, upTo: 50_000_000, seconds: 4)
        defer { close(fd) }
        let grown = rss() - before
        #expect(grown < 5 * 1024, "RSS grew by \(grown) KiB after \(sent / 1024) KiB of pipelined requests nobody read")
        #expect(sent < 50_000_000, "the daemon stopped taking requests from a client that does not read")
        #expect(try api.tcp("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken).status == 200, "others are served meanwhile")

        // Now read one byte a second: the answers' deadline (10 s) is not renewed by a trickle.
        let start = Date()
        var byte: UInt8 = 0
        var closed = false
        while Date().timeIntervalSince(start) < 20 {
            let count = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                closed = true
                break
            }
            Thread.sleep(forTimeInterval: 1)
            var info = tcp_info()
            var length = socklen_t(MemoryLayout<tcp_info>.size)
            getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length)
            // Cut: a FIN (CLOSE_WAIT) or, with our requests unread there, a reset (CLOSE); what
            // is still in our receive buffer would take an hour to read at this pace.
            if info.tcpi_state == UInt8(TCP_CLOSE_WAIT) || info.tcpi_state == UInt8(TCP_CLOSE) { closed = true; break }
        }
        #expect(closed, "a trickling reader was not cut within 20 s")
        #expect(Date().timeIntervalSince(start) < 15)
    }
}

extension Wire {
    /// A client that pipelines `request` again and again without reading an answer, on a
    /// connection with a small receive buffer (so the daemon's answers back up at once), until
    /// `limit` bytes are sent or `seconds` pass. Returns the open connection and the bytes sent.
    static func pipeline(port: UInt16, _ request: String, upTo limit: Int, seconds: Double) throws -> (fd: Int32, sent: Int) {
        let fd = try connect(port: port, receiveBuffer: 4096)
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        let chunk = (0..<1000).flatMap { _ in bytes }
        var sent = 0
        let deadline = Date().addingTimeInterval(seconds)
        while sent < limit, Date() < deadline {
            // Resume mid-request after a short send, so the stream stays well-formed.
            let offset = sent % chunk.count
            let count = chunk[offset...].prefix(limit - sent).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 { sent += count } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { break }
        }
        return (fd, sent)
    }
}
