import Foundation
import Synchronization
import Testing
@testable import AuthInfoDaemon

/// One HTTP/1.1 connection that stays open for many requests (a terminal polling on keep-alive).
final class KeepAliveConnection {
    let fd: Int32

    init(tcpPort port: UInt16, host: String = "127.0.0.1", from source: String? = nil) throws {
        fd = try Wire.connect(port: port, host: host, from: source)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends `GET path` and returns the answer's status (0 when the connection failed).
    func get(_ path: String, token: String) -> Int {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: authinfod\r\nAuthorization: Bearer \(token)\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return 0 }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            if let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: received[..<end.lowerBound], as: UTF8.self)
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if received.count >= end.upperBound + length {
                    return Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                }
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return 0 }
            received += buffer[0..<count]
        }
    }
}

extension Wire {
    /// A whole exchange on a new Unix-socket connection; the answer's status, 0 when the socket
    /// could not be reached.
    static func unixStatus(_ socketPath: String, _ path: String, method: String = "GET") -> Int {
        let answer = unixAnswer(socketPath, method, path)
        let text = String(decoding: answer.prefix(20), as: UTF8.self)
        return Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// The body of `GET path` on the Unix socket, read with a socket of this process (no curl:
    /// Foundation's `Process` has crashed spawning while a test held thousands of descriptors).
    static func unixBody(_ socketPath: String, _ path: String) -> String {
        let answer = unixAnswer(socketPath, "GET", path)
        guard let end = answer.firstRange(of: Array("\r\n\r\n".utf8)) else { return "" }
        return String(decoding: answer[end.upperBound...], as: UTF8.self)
    }

    /// Every byte answered to `method path` on a new connection (`Connection: close`), empty
    /// when the socket could not be reached.
    private static func unixAnswer(_ socketPath: String, _ method: String, _ path: String) -> [UInt8] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: socketPath.utf8)
            raw[socketPath.utf8.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return [] }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: authinfod\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return received
    }
}

@Suite struct ReloadUnderLoadTests {
    /// Readers in tight loops — new connections on the Unix socket, one kept-alive connection
    /// over TCP — while 20 SIGHUPs rotate a token, flip the socket's mode and move the TCP
    /// listener between two addresses: not one request fails, and the rotated token works at once.
    @Test func readersSeeNoFailureThroughTwentyReloads() throws {
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: api.site.configPath))) as? [String: Any])
        var listen = try #require(config["listen"] as? [String: Any])
        var clients = try #require(listen["tcp_clients"] as? [[String: Any]])
        try api.site.directory.write("rotating.token", "rotating-token-0000000000\n")
        clients.append(["name": "rotating", "token_file": "rotating.token", "devices": ["dev-0002"]])

        let stop = Atomic(false)
        let failures = Mutex([String]())
        let counts = Mutex((unix: 0, tcp: 0))
        let socketPath = api.socketPath
        let unixReader = Thread {
            while !stop.load(ordering: .relaxed) {
                let status = Wire.unixStatus(socketPath, "/v1/devices/dev-0001/authinfo")
                if status != 200 { failures.withLock { $0.append("unix: \(status)") } }
                counts.withLock { $0.unix += 1 }
            }
        }
        let port = api.port
        let tcpReader = Thread {
            guard let keptAlive = try? KeepAliveConnection(tcpPort: port) else {
                return failures.withLock { $0.append("tcp: cannot connect") }
            }
            while !stop.load(ordering: .relaxed) {
                let status = keptAlive.get("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken)
                if status != 200 { failures.withLock { $0.append("tcp kept alive: \(status)") } }
                counts.withLock { $0.tcp += 1 }
            }
        }
        unixReader.start()
        tcpReader.start()

        for round in 1...20 {
            let token = "rotating-token-\(String(format: "%010d", round))"
            try api.site.directory.write("rotating.token", token + "\n")
            listen["tcp_clients"] = clients
            listen["unix_socket_mode"] = round % 2 == 0 ? "0660" : "0600"
            listen["tcp"] = "\(round % 4 < 2 ? "127.0.0.2" : "127.0.0.1"):\(api.port)"
            config["listen"] = listen
            try api.site.writeConfig(config)
            kill(api.daemon.process.processIdentifier, SIGHUP)
            api.daemon.wait(5, "reload \(round) applied") { api.daemon.log.components(separatedBy: "event=reload result=applied").count - 1 == round }
            let host = round % 4 < 2 ? "127.0.0.2" : "127.0.0.1"
            let fresh = try KeepAliveConnection(tcpPort: api.port, host: host)
            #expect(fresh.get("/v1/devices/dev-0002/authinfo", token: token) == 200, "round \(round): the new token works at once on \(host)")
            if round > 1 {
                let old = "rotating-token-\(String(format: "%010d", round - 1))"
                #expect(fresh.get("/v1/devices/dev-0002/authinfo", token: old) == 401, "round \(round): the rotated-out token is refused")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        stop.store(true, ordering: .relaxed)
        while unixReader.isExecuting || tcpReader.isExecuting { Thread.sleep(forTimeInterval: 0.01) }
        let (unixCount, tcpCount) = counts.withLock { ($0.unix, $0.tcp) }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(5) }) of \(unixCount) Unix and \(tcpCount) TCP requests")
        #expect(unixCount > 100 && tcpCount > 100, "the readers kept reading: \(unixCount) Unix, \(tcpCount) TCP")
        var status = stat()
        lstat(api.socketPath, &status)
        #expect(status.st_mode & 0o777 == 0o660, "the last reload's mode is in place")
    }

    /// A reload whose new TCP address cannot be bound is refused as a whole: the old listeners
    /// and the old devices stay in service, and the refusal is logged with the reason.
    @Test func aReloadWhoseListenerCannotBindIsRefusedAndChangesNothing() throws {
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        let (blocker, taken) = APISite.boundSocket(host: "127.0.0.3")
        defer { close(blocker) }
        listen(blocker, 1)

        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: api.site.configPath))) as? [String: Any])
        var listen = try #require(config["listen"] as? [String: Any])
        listen["tcp"] = "127.0.0.3:\(taken)"
        config["listen"] = listen
        config["devices"] = [["device_id": "dev-0001", "raw_data": "RAW-1"]]
        try api.site.writeConfig(config)
        kill(api.daemon.process.processIdentifier, SIGHUP)
        api.daemon.wait(5, "the reload refused") { api.daemon.log.contains("event=reload_refused") }
        #expect(api.daemon.log.contains("cannot listen on listen.tcp 127.0.0.3:\(taken)"))
        #expect(Wire.unixStatus(api.socketPath, "/v1/devices/dev-0002/authinfo") == 200, "the old device list is still served")
        #expect(try KeepAliveConnection(tcpPort: api.port).get("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken) == 200)
        #expect(!api.daemon.log.contains("event=reload result=applied"))
    }

    /// `authinfod reload` waits for the outcome: exit 0 when applied; exit 1 with the reason
    /// when the new config is refused, and the daemon keeps the running one.
    @Test func reloadCommandReportsAppliedAndRefused() throws {
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: api.site.configPath))) as? [String: Any])
        config["devices"] = [["device_id": "dev-0001", "raw_data": "RAW-1"]]
        try api.site.writeConfig(config)
        let applied = try Binary.run(["reload", "--config", api.site.configPath])
        #expect(applied.status == 0 && applied.stdout == "reload applied\n", "\(applied)")
        #expect(api.daemon.log.contains("event=reload result=applied devices=1"))

        var broken = config
        broken["refresh"] = ["intervl_seconds": 10]
        try api.site.writeConfig(broken)
        let invalid = try Binary.run(["reload", "--config", api.site.configPath])
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("refresh.intervl_seconds") && invalid.stderr.contains("keeps its configuration"), "\(invalid.stderr)")

        // Valid on paper, refused by the daemon: its new TCP address is taken.
        let (blocker, taken) = APISite.boundSocket(host: "127.0.0.3")
        defer { close(blocker) }
        listen(blocker, 1)
        var section = try #require(config["listen"] as? [String: Any])
        section["tcp"] = "127.0.0.3:\(taken)"
        config["listen"] = section
        try api.site.writeConfig(config)
        let refused = try Binary.run(["reload", "--config", api.site.configPath])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("reload refused") && refused.stderr.contains("127.0.0.3:\(taken)"), "\(refused.stderr)")
        #expect(Wire.unixStatus(api.socketPath, "/v1/devices/dev-0001/authinfo") == 200, "the running configuration is kept")
        let answer = try api.unix("/v1/reload", ["-X", "POST"])
        #expect(answer.status == 409 && answer.body.contains("\"error\":\"config_refused\"") && answer.body.contains("\"reason\":"), "\(answer)")
        #expect(try api.tcp("/v1/reload", token: APISite.kioskToken, ["-X", "POST"]).status == 403, "only an admin may reload")
    }
}
