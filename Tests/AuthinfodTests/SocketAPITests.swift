import Foundation
import Testing

/// An HTTP exchange with exact bytes over TCP or a Unix socket, for API tests.
enum Wire {
    static func curl(_ arguments: [String]) throws -> (status: Int, body: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"] + arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let split = text.range(of: "\n", options: .backwards)!
        return (Int(text[split.upperBound...]) ?? 0, String(text[..<split.lowerBound]))
    }

    /// Connects to 127.0.0.1:`port`, sends `bytes`, and returns everything received until close or timeout.
    static func raw(port: UInt16, _ bytes: [UInt8], timeout: Int = 5) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var interval = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// A TCP connection left open after sending `bytes` (a stalled client).
    static func stall(port: UInt16, _ bytes: String) -> Int32 {
        let fd = (try? connect(port: port)) ?? -1
        _ = Array(bytes.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return fd
    }

    /// A TCP connection to 127.0.0.1:`port`, with `receiveBuffer` bytes of socket receive buffer
    /// when given (set before connecting, so the window is small from the start).
    static func connect(port: UInt16, host: String = "127.0.0.1", from source: String? = nil, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            // Another loopback address as the client's own: a second host on the LAN.
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        return fd
    }
}

/// A site with the socket API on: a Unix socket, and TCP on a free loopback port with a scoped
/// kiosk client and an admin.
struct APISite {
    static let kioskToken = "kiosk-token-0123456789abcdef"
    static let adminToken = "admin-token-0123456789abcdef"

    let site: Site
    let daemon: DaemonProcess
    let port: UInt16

    /// Starts the daemon on a free port. Another test may take that port between the look-up
    /// and the daemon's bind (the kernel hands out freed ports again); the daemon then refuses
    /// to start, saying so, and the site tries another port.
    /// `listen` adds to (or overrides) the listen section; `extra` replaces top-level sections.
    /// `site`: one prepared by the test (its simulator already misbehaving); `waitForValues`:
    /// whether to wait until every device has a value.
    init(site prepared: Site? = nil, devices: Int = 3, extra: [String: Any] = [:], listen: [String: Any] = [:], waitForValues: Bool = true) throws {
        site = try prepared ?? Site()
        try site.directory.write("kiosk.token", Self.kioskToken + "\n")
        try site.directory.write("ops.token", Self.adminToken + "\n")
        var attempt = 0
        while true {
            attempt += 1
            let port = try APISite.freePort()
            var config = site.fastConfig(devices: devices)
            var listenSection: [String: Any] = [
                "unix_socket": "authinfod.sock",
                "tcp": "127.0.0.1:\(port)",
                "tcp_clients": [
                    ["name": "kiosk-1", "token_file": "kiosk.token", "devices": ["dev-0001"]],
                    ["name": "ops", "token_file": "ops.token", "devices": ["*"], "admin": true],
                ],
            ]
            for (key, value) in listen { listenSection[key] = value }
            config["listen"] = listenSection
            for (key, value) in extra { config[key] = value }
            try site.writeConfig(config)
            let daemon = try site.start()
            let site = self.site
            daemon.wait(20, "ready") { daemon.log.contains("event=ready") || !daemon.process.isRunning }
            if !daemon.process.isRunning && daemon.log.contains("cannot listen on listen.tcp") && attempt < 5 { continue }
            if waitForValues { daemon.wait(20, "all devices published") { site.allPublished(devices) } }
            (self.daemon, self.port) = (daemon, port)
            return
        }
    }

    var socketPath: String { site.directory.file("authinfod.sock") }
    var url: String { "http://127.0.0.1:\(port)" }

    func unix(_ path: String, _ extra: [String] = []) throws -> (status: Int, body: String) {
        try Wire.curl(["--unix-socket", socketPath] + extra + ["http://localhost" + path])
    }

    func tcp(_ path: String, token: String?, _ extra: [String] = []) throws -> (status: Int, body: String) {
        try Wire.curl((token.map { ["-H", "Authorization: Bearer \($0)"] } ?? []) + extra + [url + path])
    }

    static func freePort() throws -> UInt16 {
        let (fd, port) = boundSocket(host: "127.0.0.1")
        close(fd)
        return port
    }

    /// A TCP socket bound to a free port on `host`, and that port.
    static func boundSocket(host: String) -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr(host)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, UInt16(bigEndian: address.sin_port))
    }
}

@Suite struct SocketAPITests {
    @Test func unixSocketAndTCPServeTheSameDocumentAsTheFile() throws {
        let api = try APISite()
        defer { _ = api.daemon.terminate() }
        var status = stat()
        lstat(api.socketPath, &status)
        #expect(status.st_mode & 0o777 == 0o660)

        let file = try #require(api.site.published("dev-0001"))
        let unix = try api.unix("/v1/devices/dev-0001/authinfo")
        #expect(unix.status == 200)
        let overUnix = try #require(try JSONSerialization.jsonObject(with: Data(unix.body.utf8)) as? [String: Any])
        let tcp = try api.tcp("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken)
        #expect(tcp.status == 200)
        #expect(tcp.body == unix.body)
        for key in ["device_id", "authinfo", "fetched_at", "expires_at"] {
            #expect("\(overUnix[key]!)" == "\(file[key]!)", "\(key) differs between socket and file")
        }
        #expect(overUnix["state"] as? String == "fresh")
        #expect(try api.unix("/healthz").status == 200)
    }

    @Test func tcpNeedsAValidTokenAndKeepsClientsInTheirScope() throws {
        let api = try APISite()
        defer { _ = api.daemon.terminate() }
        #expect(try api.tcp("/v1/devices/dev-0001/authinfo", token: nil).status == 401)
        #expect(try api.tcp("/v1/devices/dev-0001/authinfo", token: "wrong-token-0123456789abcdef").status == 401)
        #expect(try api.tcp("/healthz", token: nil).status == 401)
        let outside = try api.tcp("/v1/devices/dev-0002/authinfo", token: APISite.kioskToken)
        let missing = try api.tcp("/v1/devices/dev-9999/authinfo", token: APISite.kioskToken)
        #expect(outside.status == 403)
        #expect(missing.status == 403 && missing.body == outside.body, "existence outside the scope is never revealed")
        #expect(try api.tcp("/v1/status", token: APISite.kioskToken).status == 403)
        #expect(try api.tcp("/metrics", token: APISite.kioskToken).status == 403)
        #expect(try api.tcp("/v1/devices/dev-0001/refresh", token: APISite.kioskToken, ["-X", "POST"]).status == 403)
        #expect(try api.tcp("/v1/devices/dev-9999/authinfo", token: APISite.adminToken) == (404, "{\"error\":\"unknown_device\"}"))
        #expect(try api.tcp("/v1/devices/dev-0002/authinfo", token: APISite.adminToken).status == 200)
        #expect(try api.tcp("/v1/devices/dev-0002/refresh", token: APISite.adminToken, ["-X", "POST"]).status == 202)
        #expect(try api.tcp("/v1/devices/dev-0001/authinfo", token: APISite.adminToken, ["-X", "DELETE"]).status == 405)
        #expect(!api.daemon.log.contains(APISite.kioskToken) && !api.daemon.log.contains(APISite.adminToken), "tokens are never logged")
    }

    @Test func pushedRawDataIsPersistedAndRefreshesTheDeviceNow() throws {
        let api = try APISite()
        let before = api.site.simulator.requests(path: "/v3/offlineface/authinfo").filter { $0.deviceID == "dev-0001" }.count
        let put = try api.tcp("/v1/devices/dev-0001/raw_data", token: APISite.kioskToken, ["-X", "PUT", "--data-binary", "NEW-RAW-FROM-SDK"])
        #expect(put.status == 204)
        api.daemon.wait(5, "a refresh with the pushed raw_data") {
            api.site.simulator.requests(path: "/v3/offlineface/authinfo").contains { $0.deviceID == "dev-0001" && $0.rawData == "NEW-RAW-FROM-SDK" }
        }
        #expect(api.site.simulator.requests(path: "/v3/offlineface/authinfo").filter { $0.deviceID == "dev-0001" }.count == before + 1)
        #expect(try api.tcp("/v1/devices/dev-0002/raw_data", token: APISite.kioskToken, ["-X", "PUT", "--data-binary", "X"]).status == 403)
        #expect(try api.unix("/v1/devices/dev-0001/raw_data", ["-X", "PUT", "--data-binary", ""]).status == 400)
        #expect(!api.daemon.log.contains("NEW-RAW-FROM-SDK"), "raw_data is never logged")
        #expect(api.daemon.terminate().status == 0)

        // After a restart the pushed raw_data is still the one used.
        let again = try api.site.start()
        defer { _ = again.terminate() }
        again.wait(10, "ready") { again.log.contains("event=ready") }
        #expect(try Wire.curl(["--unix-socket", api.socketPath, "-X", "POST", "http://localhost/v1/devices/dev-0001/refresh"]).status == 202)
        again.wait(5, "refresh after restart") {
            api.site.simulator.requests(path: "/v3/offlineface/authinfo").filter { $0.deviceID == "dev-0001" && $0.rawData == "NEW-RAW-FROM-SDK" }.count >= 2
        }
    }

    @Test func metricsAreValidPrometheusText() throws {
        let api = try APISite()
        defer { _ = api.daemon.terminate() }
        let metrics = try api.unix("/metrics")
        #expect(metrics.status == 200)
        let sample = #/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$/#
        var names = Set<String>()
        for line in metrics.body.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
            #expect(line.wholeMatch(of: sample) != nil, "not a Prometheus sample: \(line)")
            names.insert(String(line.prefix { $0 != "{" && $0 != " " }))
        }
        for name in ["authinfod_devices", "authinfod_refreshes_total", "authinfod_gateway_request_duration_seconds_bucket",
                     "authinfod_runway_seconds", "authinfod_build_info"] {
            #expect(names.contains(name), "\(name) missing")
        }
        #expect(metrics.body.contains("authinfod_devices{state=\"fresh\"} 3"))
        #expect(metrics.body.contains("authinfod_refreshes_total{result=\"success\",code=\"\"} 3"))
    }

    @Test func tokensEndpointCallsTheGateway() throws {
        let api = try APISite()
        defer { _ = api.daemon.terminate() }
        let answer = try api.unix("/v1/tokens", ["-X", "POST", "--data-binary", #"{"out_user_id":"u1","organization_id":"o1"}"#])
        #expect(answer.status == 200)
        #expect(answer.body.hasPrefix("{\"token\":\"SIMTOKEN-"))
        #expect(try api.unix("/v1/tokens", ["-X", "POST", "--data-binary", "{}"]).status == 400)
        #expect(try api.tcp("/v1/tokens", token: APISite.kioskToken, ["-X", "POST", "--data-binary", "{}"]).status == 403)
    }

    @Test func cliStatusGetAndRefreshTalkToTheRunningDaemon() throws {
        let api = try APISite()
        let status = try Binary.run(["status", "--config", api.site.configPath])
        #expect(status.status == 0)
        #expect(status.stdout.contains("(from the running daemon)"))
        #expect(status.stdout.contains("3 devices: 3 fresh"))
        let get = try Binary.run(["get", "dev-0003", "--config", api.site.configPath])
        #expect(get.stdout == (api.site.published("dev-0003")?["authinfo"] as? String ?? "?") + "\n")
        let before = api.site.simulator.requests().count
        let refresh = try Binary.run(["refresh", "--all", "--config", api.site.configPath])
        #expect(refresh.status == 0, "\(refresh.stderr)")
        api.daemon.wait(5, "three refreshes") { api.site.simulator.requests().count >= before + 3 }
        #expect(api.daemon.terminate().status == 0)

        let offline = try Binary.run(["refresh", "dev-0001", "--config", api.site.configPath])
        #expect(offline.status == 1)
        #expect(offline.stderr.contains("no daemon answers"))
        #expect(try Binary.run(["refresh", "--config", api.site.configPath]).status == 2)
        let cached = try Binary.run(["status", "--config", api.site.configPath])
        #expect(cached.stdout.contains("(from the cache)"))
    }

    @Test func hostileInputIsRefusedWithoutDisturbingOtherClientsOrLeakingDescriptors() throws {
        let api = try APISite(extra: ["log": ["level": "info"]])
        defer { _ = api.daemon.terminate() }
        let descriptors = { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(api.daemon.process.processIdentifier)/fd").count) ?? -1 }
        let baseline = descriptors()
        let auth = "Authorization: Bearer \(APISite.kioskToken)\r\n"
        #expect(Wire.raw(port: api.port, [0x00, 0xFF, 0x13, 0x37] + Array("\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 "))
        #expect(Wire.raw(port: api.port, Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200_000) + "\r\n\r\n").utf8)).hasPrefix("HTTP/1.1 431 "))
        #expect(Wire.raw(port: api.port, Array("PUT /v1/devices/dev-0001/raw_data HTTP/1.1\r\n\(auth)Content-Length: 100000\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 413 "))
        #expect(Wire.raw(port: api.port, Array("POST /v1/tokens HTTP/1.1\r\n\(auth)Transfer-Encoding: chunked\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 501 "))
        for path in ["/v1/devices/../../etc/passwd/authinfo", "/v1/devices/..%2f..%2fetc/authinfo", "/v1/devices/dev-0001/../dev-0002/authinfo", "/../authinfod.json"] {
            let answer = Wire.raw(port: api.port, Array("GET \(path) HTTP/1.1\r\n\(auth)Connection: close\r\n\r\n".utf8))
            #expect(answer.hasPrefix("HTTP/1.1 403 ") || answer.hasPrefix("HTTP/1.1 404 ") || answer.hasPrefix("HTTP/1.1 400 "), "\(path): \(answer.prefix(40))")
            #expect(!answer.contains("authinfo\":"), "\(path) must not serve a document")
        }
        let stalled = (0..<50).map { _ in Wire.stall(port: api.port, "GET /v1/devices/dev-0001/authinfo HTTP/1.1\r\nHost: x") }
        let start = Date()
        let answer = try api.tcp("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken)
        #expect(answer.status == 200)
        #expect(Date().timeIntervalSince(start) < 1, "a device still reads in time while 50 connections stall")
        #expect(descriptors() >= baseline + 50)
        stalled.forEach { close($0) }
        api.daemon.wait(5, "every client descriptor closed") { descriptors() <= baseline }
    }

    /// dev-0002's hook hangs for up to its 4 s timeout; meanwhile the other devices' hooks run,
    /// and refreshes requested during the hang complete and run their hooks again.
    @Test func onChangeHookRunsWithTheDeviceAndFileAndAHangingHookBlocksNothing() throws {
        let site = try Site()
        let output = site.directory.file("hook.out")
        let script = try site.directory.write("hook.sh", "#!/bin/sh\necho \"$AUTHINFOD_DEVICE_ID $AUTHINFOD_FILE\" >> \(output)\n[ \"$AUTHINFOD_DEVICE_ID\" = dev-0002 ] && sleep 30\nexit 0\n", mode: 0o755)
        try site.writeConfig(site.fastConfig(devices: 3).merging(["on_change": ["command": [script], "timeout_seconds": 4]]) { $1 })
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        let runs = { (device: String) in ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix(device + " ") }.count }
        daemon.wait(10, "all published") { site.allPublished(3) }
        daemon.wait(5, "three hook runs") { runs("dev-0001") == 1 && runs("dev-0002") == 1 && runs("dev-0003") == 1 }
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").sorted()
        #expect(lines.first == "dev-0001 \(site.directory.file("devices/dev-0001.json"))")

        let socket = site.directory.file("authinfod.sock")
        for id in ["dev-0001", "dev-0003"] {
            #expect(try Wire.curl(["--unix-socket", socket, "-X", "POST", "http://localhost/v1/devices/\(id)/refresh"]).status == 202)
        }
        daemon.wait(3, "both refreshed and their hooks run again while dev-0002's hook still hangs") { runs("dev-0001") == 2 && runs("dev-0003") == 2 }
        #expect(!daemon.log.contains("event=hook_timeout"), "the second round finished inside the hang")
        daemon.wait(8, "the hanging hook is killed") { daemon.log.contains("event=hook_timeout device=dev-0002") }
    }

    /// A hook holds none of the daemon's descriptors (database, sockets, files): stdin, stdout
    /// and stderr are /dev/null; it starts with no signal ignored or blocked, in a process group
    /// of its own; and a timeout stops what it started too, even a child that ignores SIGTERM.
    @Test func onChangeHookInheritsNothingAndATimeoutStopsItsChildren() throws {
        let site = try Site()
        let script = try site.directory.write("hook.sh", """
            #!/bin/sh
            sh -c 'trap "" TERM; sleep 30' &
            echo "$$ $!" > \(site.directory.file("hook.pids.tmp"))
            mv \(site.directory.file("hook.pids.tmp")) \(site.directory.file("hook.pids"))
            wait
            """, mode: 0o755)
        var config = site.fastConfig(devices: 1)
        config["on_change"] = ["command": [script], "timeout_seconds": 2]
        try site.writeConfig(config)
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(10, "the hook started") { FileManager.default.fileExists(atPath: site.directory.file("hook.pids")) }
        let pids = try String(contentsOfFile: site.directory.file("hook.pids"), encoding: .utf8).split(separator: " ")
            .compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        try #require(pids.count == 2)
        let (hook, child) = (pids[0], pids[1])
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(hook)/fd")
        for fd in descriptors {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(hook)/fd/\(fd)")) ?? "?"
            if ["0", "1", "2"].contains(fd) {
                #expect(target == "/dev/null", "fd \(fd) of the hook is \(target)")
            } else {
                #expect(!target.hasPrefix("socket:") && !target.contains("authinfo.db") && !target.contains("/devices"),
                        "the hook inherited the daemon's fd \(fd): \(target)")
            }
        }
        let status = try String(contentsOfFile: "/proc/\(hook)/status", encoding: .utf8).split(separator: "\n")
        #expect(status.contains("SigBlk:\t0000000000000000"), "\(status.filter { $0.hasPrefix("Sig") })")
        // Signals 1–31 (glibc's posix_spawn itself leaves its two internal signals, 32 and 33, ignored).
        let ignored = status.first { $0.hasPrefix("SigIgn:") }.flatMap { UInt64($0.dropFirst(8), radix: 16) }
        #expect(ignored.map { $0 & 0x7FFF_FFFF } == 0, "\(status.filter { $0.hasPrefix("Sig") })")
        let stat = try String(contentsOfFile: "/proc/\(hook)/stat", encoding: .utf8)
        let processGroup = stat.split(separator: ")").last?.split(separator: " ").dropFirst(2).first
        #expect(processGroup == "\(hook)"[...], "the hook leads its own process group")
        daemon.wait(10, "the hook timed out") { daemon.log.contains("event=hook_timeout device=dev-0001") }
        daemon.wait(5, "the hook and its child are gone") { kill(hook, 0) != 0 && kill(child, 0) != 0 }
        daemon.wait(5, "the end is logged") { daemon.log.contains("event=hook_failed device=dev-0001") }
    }
}
