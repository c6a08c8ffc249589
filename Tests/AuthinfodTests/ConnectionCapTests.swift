import Foundation
import Testing

/// Descriptor exhaustion from the LAN, against the real daemon with real sockets: connections
/// are capped per address and in total, the connection idle the longest makes room for a new
/// one, and the Unix socket, other LAN hosts and refreshes never notice.
@Suite struct ConnectionCapTests {
    /// This test process opens thousands of sockets: lift its own soft limit to the hard one.
    static func raiseOpenFileLimit() throws {
        var files = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        files.rlim_cur = files.rlim_max
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        try #require(files.rlim_cur >= 4096, "the test needs 4096 open files, the hard limit is \(files.rlim_max)")
    }

    /// The value of the metric line starting with `prefix`, or nil.
    static func metric(_ api: APISite, _ prefix: String) throws -> Int? {
        let line = Wire.unixBody(api.socketPath, "/metrics").split(separator: "\n").first { $0.hasPrefix(prefix + " ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") }
    }

    @Test func twoThousandIdleConnectionsFromOneAddressStarveNobody() throws {
        try Self.raiseOpenFileLimit()
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        // A terminal on another host, kept alive across the flood.
        let terminal = try KeepAliveConnection(tcpPort: api.port, from: "127.0.0.3")
        #expect(terminal.get("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken) == 200)

        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<2000 { held.append(try Wire.connect(port: api.port, from: "127.0.0.2")) }
        let shedKey = "authinfod_connections_limited_total{cap=\"per_address\",action=\"shed_idle\"}"
        api.daemon.wait(10, "all 2,000 connections handled") { ((try? Self.metric(api, shedKey)) ?? 0) >= 2000 - 64 }

        #expect(try Self.metric(api, shedKey) == 2000 - 64, "every connection beyond 64 from one address shed an older idle one")
        let open = try #require(try Self.metric(api, "authinfod_connections_open{listener=\"tcp\"}"))
        #expect(open <= 64 + 1, "\(open) LAN connections open; the cap is 64 per address (plus the terminal)")
        #expect(terminal.get("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken) == 200, "the kept-alive terminal is untouched")
        let other = try KeepAliveConnection(tcpPort: api.port, from: "127.0.0.4")
        #expect(other.get("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken) == 200, "a new host connects and reads")
        #expect(Wire.unixStatus(api.socketPath, "/v1/devices/dev-0002/authinfo") == 200)

        // A refresh still goes out and lands (gateway calls need descriptors too).
        let issued = { api.site.simulator.issuedAuthInfo(deviceID: "dev-0002").count }
        let before = issued()
        #expect(Wire.unixStatus(api.socketPath, "/v1/devices/dev-0002/refresh", method: "POST") == 202)
        api.daemon.wait(10, "the refresh") { issued() > before }
        api.daemon.wait(5, "the refreshed value published") {
            api.daemon.log.split(separator: "\n").filter { $0.contains("event=refreshed device=dev-0002") }.count >= 2
        }

        let lines = api.daemon.log.split(separator: "\n").filter { $0.contains("event=connection_limited") }
        #expect(lines.count == 1, "one log line per address per 10 s, not 1,936: \(lines.prefix(3))")
        #expect(lines.first?.contains("client=127.0.0.2 ") == true && lines.first?.contains("listen.max_connections_per_address") == true)
        #expect(api.daemon.process.isRunning)
    }

    /// The total cap: new connections shed the ones idle the longest, whoever they belong to;
    /// when every connection is busy (mid-request), the new one is refused until the slow ones
    /// time out.
    @Test func theTotalCapShedsTheLongestIdleAndRefusesWhenAllAreBusy() throws {
        try Self.raiseOpenFileLimit()
        let api = try APISite(devices: 1, listen: ["max_connections": 40, "max_connections_per_address": 30])
        defer { _ = api.daemon.terminate() }
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<30 { held.append(try Wire.connect(port: api.port, from: "127.0.0.2")) }
        Thread.sleep(forTimeInterval: 0.3)
        var newer: KeepAliveConnection? = try KeepAliveConnection(tcpPort: api.port, from: "127.0.0.5")
        #expect(newer?.get("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken) == 200)
        for _ in 0..<30 { held.append(try Wire.connect(port: api.port, from: "127.0.0.3")) }
        let totalShed = "authinfod_connections_limited_total{cap=\"total\",action=\"shed_idle\"}"
        api.daemon.wait(10, "the total cap") { ((try? Self.metric(api, totalShed)) ?? 0) >= 21 }
        #expect(try Self.metric(api, totalShed) == 21, "61 connections, 40 allowed: the 21 idle the longest were shed")
        #expect(try #require(try Self.metric(api, "authinfod_connections_open{listener=\"tcp\"}")) <= 40)
        #expect(newer?.get("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken) == 200, "a recently active connection was not shed")

        // Now every connection is busy: each has sent half a request.
        for fd in held { close(fd) }
        held = []
        newer = nil
        Thread.sleep(forTimeInterval: 0.3)
        let half = Array("GET /v1/devices/dev-0001/authinfo HTTP/1.1\r\n".utf8)
        for index in 0..<40 {
            let fd = try Wire.connect(port: api.port, from: index < 20 ? "127.0.0.6" : "127.0.0.7")
            _ = half.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            held.append(fd)
        }
        Thread.sleep(forTimeInterval: 0.3)
        let refused = Wire.raw(port: api.port, Array("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n".utf8), timeout: 3)
        #expect(refused.isEmpty, "with 40 busy connections a new one is closed at once, not queued: \(refused.prefix(80))")
        #expect(try Self.metric(api, "authinfod_connections_limited_total{cap=\"total\",action=\"refused\"}") ?? 0 >= 1)
        #expect(Wire.unixStatus(api.socketPath, "/healthz") == 200, "the Unix socket has its own descriptors")
    }
}
