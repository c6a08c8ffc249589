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
            // A small receive buffer, so the daemon's answers back up at once.
            let fd = try Wire.connect(port: api.port, receiveBuffer: 4096)
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let request = Array("GET / HTTP/1.1\r\n\r\n".utf8)
            let flood = (0..<50_000).flatMap { _ in request }
            var sent = 0
            let deadline = Date().addingTimeInterval(3)
            while sent < flood.count, Date() < deadline {
                let count = flood[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count > 0 { sent += count } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { break }
            }
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
}
