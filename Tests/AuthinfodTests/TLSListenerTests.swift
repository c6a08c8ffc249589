import Foundation
import SystemCalls
import Testing
@testable import WeChatPay

/// TLS on the LAN listener, against real clients: curl over TLS 1.2 and 1.3 with `--cacert`,
/// TLS 1.1 and plain HTTP refused, a certificate rotated by a reload.
@Suite struct TLSListenerTests {
    /// A self-signed certificate for `localhost` and its key, written into `directory`.
    static func certificate(_ directory: TemporaryDirectory, _ name: String) throws -> (certificate: String, key: String) {
        let key = try RSAPrivateKey(generatingBits: 2048)
        let certificate = try X509Certificate.selfSigned(key: key, serialNumber: String(format: "%02X", Int.random(in: 1..<255)), commonName: "localhost",
                                                         notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(86_400))
        return (try directory.write("\(name).crt", certificate.pem, mode: 0o644), try directory.write("\(name).key", try key.pkcs8PEM(), mode: 0o600))
    }

    static func site(_ extraListen: [String: Any] = [:], extra: [String: Any] = [:]) throws -> (APISite, certificate: String) {
        let site = try Site()
        let (certificate, key) = try Self.certificate(site.directory, "lan")
        let api = try APISite(site: site, devices: 2, extra: extra,
                              listen: ["tls": ["certificate_file": certificate, "private_key_file": key]].merging(extraListen) { $1 })
        return (api, certificate)
    }

    /// curl with `-v` (the negotiated protocol is on stderr): the status and what curl said.
    static func curl(_ arguments: [String]) throws -> (status: Int, exit: Int32, verbose: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sv", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let status = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let verbose = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (Int(status) ?? 0, process.terminationStatus, verbose)
    }

    @Test func curlReadsOverTLS12And13AndOlderOrPlainIsRefused() throws {
        let (api, certificate) = try Self.site()
        defer { _ = api.daemon.terminate() }
        let url = "https://localhost:\(api.port)/v1/devices/dev-0001/authinfo"
        let auth = ["-H", "Authorization: Bearer \(APISite.kioskToken)", "--cacert", certificate, "--resolve", "localhost:\(api.port):127.0.0.1"]
        let v13 = try Self.curl(auth + ["--tlsv1.3", url])
        #expect(v13.status == 200 && v13.verbose.contains("TLSv1.3"), "\(v13.verbose.suffix(800))")
        let v12 = try Self.curl(auth + ["--tlsv1.2", "--tls-max", "1.2", url])
        #expect(v12.status == 200 && v12.verbose.contains("TLSv1.2"), "\(v12.verbose.suffix(800))")
        #expect(v12.verbose.contains("ECDHE") && v12.verbose.contains("GCM") || v12.verbose.contains("CHACHA20"), "a forward-secret AEAD suite")
        let v11 = try Self.curl(auth + ["--tlsv1.1", "--tls-max", "1.1", url])
        #expect(v11.status == 0 && v11.exit != 0, "TLS 1.1 is refused: \(v11.verbose.suffix(400))")
        let untrusted = try Self.curl(["-H", "Authorization: Bearer \(APISite.kioskToken)", "--resolve", "localhost:\(api.port):127.0.0.1", url])
        #expect(untrusted.status == 0 && untrusted.exit == 60, "a client that does not trust the certificate stops: exit \(untrusted.exit)")

        let plain = Wire.raw(port: api.port, Array("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
        #expect(plain.hasPrefix("HTTP/1.1 400 ") && plain.contains("tls_required"), "plain HTTP to the TLS port: \(plain.prefix(120))")
        // A handshake record full of garbage is cut, and hurts nobody.
        let garbage = Wire.raw(port: api.port, [0x16, 0x03, 0x01, 0x00, 0x40] + [UInt8](repeating: 0xAB, count: 64), timeout: 3)
        #expect(!garbage.contains("HTTP/1.1"))
        #expect(try Self.curl(auth + [url]).status == 200)
        #expect(api.daemon.log.contains("tls=on"))
    }

    @Test func aCertificateRotatedByReloadServesNewConnectionsWhileOpenOnesFinish() throws {
        let (api, first) = try Self.site()
        defer { _ = api.daemon.terminate() }
        let request = Array("GET /v1/devices/dev-0001/authinfo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(APISite.kioskToken)\r\n\r\n".utf8)
        func get(_ connection: GatewayConnection) throws -> Int {
            try connection.write(request, deadline: MonotonicClock.now() + 5)
            var reader = HTTPAnswerReader(connection: connection, deadline: MonotonicClock.now() + 5, maximumBodyBytes: 1 << 20)
            return try reader.read().0.status
        }
        let trustFirst = try TLSClientContext(trustedCertificatesFile: first)
        let open = try GatewayConnection(host: "localhost", port: api.port, tls: trustFirst, deadline: MonotonicClock.now() + 5)
        #expect(try get(open) == 200)

        // The operator replaces the certificate and key, and reloads.
        let (second, _) = try Self.certificate(api.site.directory, "lan")
        kill(api.daemon.process.processIdentifier, SIGHUP)
        api.daemon.wait(10, "the reload") { api.daemon.log.contains("event=reload result=applied") }

        #expect(try get(open) == 200, "the connection opened before the reload goes on")
        #expect(throws: TransportFailure.self, "a new connection gets the new certificate, which the old trust refuses") {
            _ = try GatewayConnection(host: "localhost", port: api.port, tls: trustFirst, deadline: MonotonicClock.now() + 5)
        }
        let fresh = try GatewayConnection(host: "localhost", port: api.port, tls: try TLSClientContext(trustedCertificatesFile: second),
                                          deadline: MonotonicClock.now() + 5)
        #expect(try get(fresh) == 200)
    }
}

extension TLSListenerTests {
    @Test func aLANListenerWithoutTLSOrWithABadKeyIsRefusedNamingTheKey() throws {
        let site = try Site()
        try site.directory.write("kiosk.token", APISite.kioskToken)
        let clients: [[String: Any]] = [["name": "kiosk", "token_file": "kiosk.token", "devices": ["*"]]]
        func check(_ listen: [String: Any]) throws -> ProcessResult {
            var config = site.config(devices: 1)
            config["listen"] = ["unix_socket": "authinfod.sock", "tcp_clients": clients].merging(listen) { $1 }
            try site.writeConfig(config)
            return try Binary.run(["check-config", "--config", site.configPath])
        }
        let plain = try check(["tcp": "0.0.0.0:8787"])
        #expect(plain.status == 1 && plain.stderr.contains("listen.tcp") && plain.stderr.contains("listen.tls") && plain.stderr.contains("allow_plaintext"), "\(plain.stderr)")
        #expect(try check(["tcp": "0.0.0.0:8787", "allow_plaintext": true]).status == 0)
        #expect(try check(["tcp": "127.0.0.1:8787"]).status == 0, "loopback needs no TLS")

        let (certificate, key) = try Self.certificate(site.directory, "lan")
        #expect(try check(["tcp": "0.0.0.0:8787", "tls": ["certificate_file": certificate, "private_key_file": key]]).status == 0)
        chmod(key, 0o644)
        let readable = try check(["tcp": "0.0.0.0:8787", "tls": ["certificate_file": certificate, "private_key_file": key]])
        #expect(readable.status == 1 && readable.stderr.contains("listen.tls.private_key_file") && readable.stderr.contains("other users"), "\(readable.stderr)")
        let (_, otherKey) = try Self.certificate(site.directory, "other")
        let mismatched = try check(["tcp": "0.0.0.0:8787", "tls": ["certificate_file": certificate, "private_key_file": otherKey]])
        #expect(mismatched.status == 1 && mismatched.stderr.contains("does not match the certificate"), "\(mismatched.stderr)")
    }

    /// 5,000 terminals long-polling over TLS: no thread each, and under 100 MB more memory
    /// (OpenSSL's buffers are released while a connection waits).
    @Test func fiveThousandLongPollsOverTLSStayUnderOneHundredMegabytes() throws {
        try ConnectionCapTests.raiseOpenFileLimit()
        // One client address here (the TLS client cannot pick its source): the per-address cap is lifted.
        // No refresh may come while the polls are set up (it would answer them all): a long interval.
        let (api, certificate) = try Self.site(["max_connections": 6000, "max_connections_per_address": 6000], extra: LongPollTests.quietRefresh)
        defer { _ = api.daemon.terminate() }
        let tag = try #require(LongPollTests.etag(try api.unix(LongPollTests.path, ["-i"]).body))
        let status = api.daemon.status
        let (threadsBefore, rssBefore) = (status("Threads"), status("VmRSS"))
        let trust = try TLSClientContext(trustedCertificatesFile: certificate)
        let request = Array("GET \(LongPollTests.path)?wait=120 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(APISite.kioskToken)\r\nIf-None-Match: \(tag)\r\n\r\n".utf8)
        var polls: [GatewayConnection] = []
        let started = Date()
        for index in 0..<5000 {
            _ = index
            let connection = try GatewayConnection(host: "localhost", port: api.port, tls: trust, deadline: MonotonicClock.now() + 10)
            try connection.write(request, deadline: MonotonicClock.now() + 5)
            polls.append(connection)
        }
        let opened = Date().timeIntervalSince(started)
        var waiting = ""
        api.daemon.wait(60, "5,000 waiting") {
            waiting = Wire.unixBody(api.socketPath, "/metrics").split(separator: "\n").first { $0.hasPrefix("authinfod_long_polls_waiting ") }.map(String.init) ?? ""
            return waiting == "authinfod_long_polls_waiting 5000"
        }
        #expect(waiting == "authinfod_long_polls_waiting 5000", "\(waiting), after \(Int(opened)) s of opening")
        let (threadsDuring, rssDuring) = (status("Threads"), status("VmRSS"))
        print("5,000 TLS long-polls (opened in \(Int(opened)) s): threads \(threadsBefore) → \(threadsDuring), RSS \(rssBefore / 1024) → \(rssDuring / 1024) MB")
        #expect(threadsDuring <= threadsBefore + 2)
        #expect(rssDuring - rssBefore < 100 * 1024, "RSS grew by \(rssDuring - rssBefore) KiB")
        #expect(Wire.unixStatus(api.socketPath, "/v1/devices/dev-0001/refresh", method: "POST") == 202)
        var answered = 0
        for connection in polls {
            var reader = HTTPAnswerReader(connection: connection, deadline: MonotonicClock.now() + 10, maximumBodyBytes: 1 << 20)
            if (try? reader.read().0.status) == 200 { answered += 1 }
        }
        #expect(answered == 5000)
    }
}

import COpenSSL

extension TLSListenerTests {
    /// Clients that reset their TLS connection right after a request (what a load tester or a
    /// terminal losing power does): the daemon's close_notify then meets a dead socket, which
    /// must be an error to handle, never a SIGPIPE that kills the process.
    @Test func clientsResettingTheirTLSConnectionsDoNotKillTheDaemon() throws {
        // This test's own writes may meet a dead socket too: EPIPE here, not SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let (api, _) = try Self.site()
        defer { _ = api.daemon.terminate() }
        let context = try #require(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(context) }
        let request = Array("GET /v1/devices/dev-0001/authinfo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(APISite.kioskToken)\r\n\r\n".utf8)
        for _ in 0..<40 {
            let fd = try Wire.connect(port: api.port)
            let ssl = try #require(SSL_new(context))
            SSL_set_fd(ssl, fd)
            #expect(SSL_connect(ssl) == 1)
            _ = request.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            _ = SSL_read(ssl, &buffer, Int32(buffer.count))
            // Reset: the daemon's next write on this socket fails with EPIPE.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            SSL_free(ssl)
            close(fd)
        }
        Thread.sleep(forTimeInterval: 0.5)
        try #require(api.daemon.process.isRunning, "the daemon died: status \(api.daemon.process.isRunning ? 0 : api.daemon.process.terminationStatus)")
        #expect(try api.unix("/healthz").status == 200)
    }
}

extension TLSListenerTests {
    /// A TLS connection to the daemon's LAN listener, the way the gateway client makes one
    /// (certificate and host name verified).
    static func keptAliveConnection(_ api: APISite, trusting certificate: String) throws -> GatewayConnection {
        try GatewayConnection(host: "localhost", port: api.port, tls: try TLSClientContext(trustedCertificatesFile: certificate),
                              deadline: MonotonicClock.now() + 5)
    }

    /// The kiosk's `GET …/authinfo` for dev-0001.
    static var kioskRequest: [UInt8] {
        Array("GET /v1/devices/dev-0001/authinfo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(APISite.kioskToken)\r\n\r\n".utf8)
    }

    /// A terminal's requests on one kept-alive TLS connection are answered at once: 200 of them
    /// in a row take well under a second. With Nagle's algorithm on the daemon's sockets, an
    /// answer's TLS record could wait for the client's delayed acknowledgement (40 ms).
    @Test func keptAliveTLSRequestsAreAnsweredWithoutDelay() throws {
        let (api, certificate) = try Self.site()
        defer { _ = api.daemon.terminate() }
        let connection = try Self.keptAliveConnection(api, trusting: certificate)
        let request = Self.kioskRequest
        var slowest = 0.0
        let started = MonotonicClock.now()
        for _ in 0..<200 {
            let before = MonotonicClock.now()
            try connection.write(request, deadline: before + 5)
            var reader = HTTPAnswerReader(connection: connection, deadline: before + 5, maximumBodyBytes: 1 << 20)
            #expect(try reader.read().0.status == 200)
            slowest = max(slowest, MonotonicClock.now() - before)
        }
        let total = MonotonicClock.now() - started
        #expect(total < 1.5 && slowest < 0.035, "200 requests took \(total) s, the slowest \(Int(slowest * 1000)) ms")
    }
}

extension TLSListenerTests {
    /// 100 KB of requests sent at once over TLS: the daemon stops reading past its input bound
    /// and resumes as it answers. What the TLS session had already read ahead from the socket is
    /// not reported by epoll again; it must still be read, not left until the request timeout.
    @Test func pipelinedRequestsBeyondTheInputBoundAreAllAnsweredOverTLS() throws {
        let (api, certificate) = try Self.site()
        defer { _ = api.daemon.terminate() }
        let connection = try Self.keptAliveConnection(api, trusting: certificate)
        let request = Self.kioskRequest
        let count = 100_000 / request.count + 1
        let started = MonotonicClock.now()
        try connection.write(Array([[UInt8]](repeating: request, count: count).joined()), deadline: started + 10)
        var reader = HTTPAnswerReader(connection: connection, deadline: started + 10, maximumBodyBytes: 1 << 20)
        var answered = 0
        for _ in 0..<count {
            guard (try? reader.read())?.0.status == 200 else { break }
            answered += 1
        }
        let took = MonotonicClock.now() - started
        #expect(answered == count, "\(answered) of \(count) pipelined requests answered")
        #expect(took < 3, "took \(took) s (the request timeout would be the stall)")
    }
}
