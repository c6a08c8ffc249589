import Foundation
import WeChatPay

/// `authinfod-bench http [--tls]`: GET authinfo over TCP loopback with `wrk -t1 -c32`, side by
/// side with nginx (one worker) serving the same published file — over TLS with the same
/// certificate for both when `tls` — and the exchange's latency next to the gateway call it makes.
/// Needs `wrk` and `nginx` installed.
enum HTTPBench {
    /// Medians of `rounds` wrk runs against each server, and exchange latencies.
    struct Figures {
        let daemonRate: Double
        let daemonP99: Double
        let nginxRate: Double
        let nginxP99: Double
        /// The server's CPU time per request (user + system, µs): what each costs, whatever
        /// else the machine was doing. Both servers run one thread on a core of their own.
        let daemonCPU: Double
        let nginxCPU: Double
        /// Exchange (new raw_data each time, so one gateway call each) p50 and p99, ms.
        let exchangeP50: Double
        let exchangeP99: Double
        /// The same gateway call made directly by a client in this process, p50 and p99, ms.
        let directP50: Double
        let directP99: Double
    }

    @discardableResult
    static func run(seconds: Int, rounds: Int, tls: Bool = false, quiet: Bool = false) throws -> Figures {
        for tool in ["/usr/bin/wrk", "/usr/sbin/nginx"] where !FileManager.default.fileExists(atPath: tool) {
            throw DaemonBench.BenchFailure(description: "\(tool) is missing: apt-get install wrk nginx-light")
        }
        let directory = NSTemporaryDirectory() + "/authinfod-http-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if ProcessInfo.processInfo.environment["BENCH_KEEP"] == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let merchantKey = try RSAPrivateKey(generatingBits: 2048)
        try merchantKey.publicKeyPEM().write(toFile: directory + "/merchant.pub", atomically: true, encoding: .utf8)
        try DaemonBench.write(directory + "/apiclient_key.pem", merchantKey.pkcs8PEM(), mode: 0o600)
        let gateway = try DaemonBench.startGateway(directory)
        defer { gateway.process.terminate() }
        let daemonPort = tls ? 18789 : 18787, nginxPort = tls ? 18790 : 18788
        let token = SecureRandom.alphanumeric(32)
        // One certificate for both servers (RSA-2048, as a site would have).
        let certificateKey = try RSAPrivateKey(generatingBits: 2048)
        let certificate = try X509Certificate.selfSigned(key: certificateKey, serialNumber: "0B", commonName: "localhost",
                                                         notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(86_400))
        try certificate.pem.write(toFile: directory + "/lan.crt", atomically: true, encoding: .utf8)
        try DaemonBench.write(directory + "/lan.key", certificateKey.pkcs8PEM(), mode: 0o600)
        var listen: [String: Any] = ["unix_socket": NSNull(), "tcp": "127.0.0.1:\(daemonPort)",
                                     "tcp_clients": [["name": "bench", "token": token, "devices": ["dev-000001"]]]]
        if tls { listen["tls"] = ["certificate_file": "lan.crt", "private_key_file": "lan.key"] }
        let config: [String: Any] = [
            "merchant": ["mchid": mchid, "serial_no": serial, "private_key_file": "apiclient_key.pem",
                         "wechatpay_public_key_id": gateway.keyID, "wechatpay_public_key_file": "pub_key.pem"],
            "api": ["base_url": "http://127.0.0.1:\(gateway.port)"],
            "storage": ["database": "authinfo.db", "publish_dir": "devices"],
            "listen": listen,
            "refresh": ["max_requests_per_second": 1000, "max_concurrent_requests": 8],
            "log": ["level": "warning"],
            "device_defaults": ["sp_appid": "wx8888888888888888", "sub_mchid": "1900000999", "organization_id": "org-1"],
            "devices": (1...4).map { ["device_id": String(format: "dev-%06d", $0), "raw_data": "RAW"] },
        ]
        // The token is inline, so the config is the owner's alone.
        try DaemonBench.write(directory + "/authinfod.json", String(decoding: JSONSerialization.data(withJSONObject: config), as: UTF8.self), mode: 0o600)
        let binary = daemonBinary()
        let daemon = try DaemonBench.startDaemon(binary, directory, log: "daemon.log")
        defer { DaemonBench.stop(daemon) }
        try DaemonBench.waitFor(files: 4, in: directory + "/devices", timeout: 30)
        // Files are published before the listeners start: wait for the port too.
        for _ in 0..<200 {
            if (try? BenchConnection(port: UInt16(daemonPort))) != nil { break }
            usleep(50_000)
        }

        try """
        worker_processes 1;
        daemon off;
        \(getuid() == 0 ? "user root root;" : "")
        pid \(directory)/nginx.pid;
        error_log \(directory)/nginx-error.log;
        events { worker_connections 1024; }
        http {
            access_log off;
            default_type application/json;
            server {
                listen 127.0.0.1:\(nginxPort)\(tls ? " ssl" : "");
                \(tls ? "ssl_certificate \(directory)/lan.crt; ssl_certificate_key \(directory)/lan.key; ssl_protocols TLSv1.2 TLSv1.3;" : "")
                location / { root \(directory)/devices; }
            }
        }
        """.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        nginx.arguments = ["-c", directory + "/nginx.conf", "-p", directory]
        try nginx.run()
        defer { nginx.terminate() }
        usleep(300_000)

        let scheme = tls ? "https" : "http"
        guard let worker = nginxWorker(nginx.processIdentifier) else { throw DaemonBench.BenchFailure(description: "nginx started no worker") }
        var daemonRuns: [WrkRun] = [], nginxRuns: [WrkRun] = []
        for _ in 0..<rounds {
            daemonRuns.append(try wrk("\(scheme)://127.0.0.1:\(daemonPort)/v1/devices/dev-000001/authinfo", header: "Authorization: Bearer \(token)",
                                      seconds: seconds, server: daemon.processIdentifier))
            nginxRuns.append(try wrk("\(scheme)://127.0.0.1:\(nginxPort)/dev-000001.json", header: nil, seconds: seconds, server: worker))
        }
        let exchange = tls ? (0.0, 0.0) : try exchangeLatency(port: daemonPort, token: token, calls: 300)
        let direct = tls ? (0.0, 0.0) : try directLatency(gateway: gateway, merchantKey: merchantKey, directory: directory, calls: 300)
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let daemonRate = median(daemonRuns.map(\.rate)), nginxRate = median(nginxRuns.map(\.rate))
        let figures = Figures(daemonRate: daemonRate, daemonP99: median(daemonRuns.map(\.p99)), nginxRate: nginxRate, nginxP99: median(nginxRuns.map(\.p99)),
                              daemonCPU: median(daemonRuns.map(\.cpuPerRequest)), nginxCPU: median(nginxRuns.map(\.cpuPerRequest)),
                              exchangeP50: exchange.0, exchangeP99: exchange.1, directP50: direct.0, directP99: direct.1)
        if !quiet {
            print("wrk -t1 -c32, \(seconds) s × \(rounds) rounds each (medians), loopback\(tls ? ", TLS (same RSA-2048 certificate for both)" : "")")
            print(String(format: "authinfod GET /v1/devices/{id}/authinfo (bearer token): %8.0f req/s, p99 %.2f ms", daemonRate, figures.daemonP99))
            print(String(format: "nginx (1 worker) GET /{id}.json (same file):           %8.0f req/s, p99 %.2f ms", nginxRate, figures.nginxP99))
            print(String(format: "ratio authinfod/nginx: %.2f×", daemonRate / nginxRate))
            print(String(format: "server CPU per request: authinfod %.1f µs, nginx %.1f µs (%.2f× nginx's)", figures.daemonCPU, figures.nginxCPU,
                         figures.daemonCPU / figures.nginxCPU))
            if !tls {
                print(String(format: "exchange (new raw_data each, 300 in a row): p50 %.2f ms, p99 %.2f ms", exchange.0, exchange.1))
                print(String(format: "the same gateway call, direct:             p50 %.2f ms, p99 %.2f ms", direct.0, direct.1))
            }
        }
        return figures
    }

    /// p50 and p99 (ms) of `calls` exchanges, each with new raw_data, over one kept-alive connection.
    static func exchangeLatency(port: Int, token: String, calls: Int) throws -> (Double, Double) {
        let connection = try BenchConnection(port: UInt16(port))
        var times: [Double] = []
        for index in 0..<(calls + 20) {
            let body = "{\"raw_data\":\"RAW-EXCHANGE-\(index)\"}"
            let request = "POST /v1/devices/dev-000001/authinfo HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let start = Date()
            let status = try connection.exchange(Array(request.utf8))
            guard status == 200 else { throw DaemonBench.BenchFailure(description: "exchange answered HTTP \(status)") }
            if index >= 20 { times.append(Date().timeIntervalSince(start) * 1000) }
        }
        return percentiles(times)
    }

    /// p50 and p99 (ms) of `calls` authinfo calls made directly to the gateway simulator.
    static func directLatency(gateway: DaemonBench.Gateway, merchantKey: RSAPrivateKey, directory: String, calls: Int) throws -> (Double, Double) {
        let publicKey = WeChatPayPublicKey(id: gateway.keyID, key: try RSAPublicKey(pem: String(contentsOfFile: directory + "/pub_key.pem", encoding: .utf8)))
        let client = WeChatPayClient(configuration: ClientConfiguration(
            signer: RequestSigner(mchid: mchid, serialNumber: serial, privateKey: merchantKey),
            publicKey: publicKey, apiV3Key: nil, baseURL: URL(string: "http://127.0.0.1:\(gateway.port)")!))
        var times: [Double] = []
        for index in 0..<(calls + 20) {
            let request = AuthInfoRequest(spAppID: "wx8888888888888888", subAppID: nil, subMchID: "1900000999", deviceID: "dev-000001",
                                          rawData: "RAW-DIRECT-\(index)", organizationID: "org-1")
            let done = DispatchSemaphore(value: 0)
            let start = Date()
            client.authinfo(request) { _ in done.signal() }
            done.wait()
            if index >= 20 { times.append(Date().timeIntervalSince(start) * 1000) }
        }
        return percentiles(times)
    }

    static func percentiles(_ values: [Double]) -> (Double, Double) {
        let sorted = values.sorted()
        return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))])
    }

    struct WrkRun {
        let rate: Double
        /// ms.
        let p99: Double
        /// The server's CPU time per request, µs.
        let cpuPerRequest: Double
    }

    /// Runs wrk against the server whose (one-threaded) process is `server`.
    static func wrk(_ url: String, header: String?, seconds: Int, server: Int32) throws -> WrkRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
        process.arguments = ["-t1", "-c32", "-d\(seconds)s", "--latency"] + (header.map { ["-H", $0] } ?? []) + [url]
        let out = Pipe()
        process.standardOutput = out
        let cpuBefore = DaemonBench.usage(server).cpu
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let cpu = DaemonBench.usage(server).cpu - cpuBefore
        let lines = text.split(separator: "\n")
        guard let rateLine = lines.first(where: { $0.hasPrefix("Requests/sec:") }),
              let rate = Double(rateLine.split(separator: " ").last ?? ""),
              let countLine = lines.first(where: { $0.contains(" requests in ") }),
              let count = Double(countLine.split(separator: " ").first ?? ""), count > 0,
              let p99Line = lines.first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("99%") }) else {
            throw DaemonBench.BenchFailure(description: "unreadable wrk output:\n\(text)")
        }
        if text.contains("Non-2xx") { throw DaemonBench.BenchFailure(description: "wrk saw errors:\n\(text)") }
        let value = p99Line.split(separator: " ").last.map(String.init) ?? ""
        let number = Double(value.filter { $0.isNumber || $0 == "." }) ?? 0
        let p99 = value.hasSuffix("us") ? number / 1000 : value.hasSuffix("ms") ? number : number * 1000
        return WrkRun(rate: rate, p99: p99, cpuPerRequest: cpu / count * 1_000_000)
    }

    /// The worker process of the nginx master `pid` (one worker is configured).
    static func nginxWorker(_ pid: Int32) -> Int32? {
        for _ in 0..<50 {
            let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
            if let first = children.split(separator: " ").first, let worker = Int32(first) { return worker }
            usleep(100_000)
        }
        return nil
    }
}

/// One kept-alive plain HTTP/1.1 connection to 127.0.0.1 that sends a request and reads its
/// answer (Content-Length framed): the exchange's latency without a client process per call.
final class BenchConnection {
    private let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard status == 0 else { throw DaemonBench.BenchFailure(description: "cannot connect to 127.0.0.1:\(port)") }
    }

    deinit { close(fd) }

    /// Sends `request` and returns the answer's status.
    func exchange(_ request: [UInt8]) throws -> Int {
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw DaemonBench.BenchFailure(description: "send failed")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            if let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: received[..<end.lowerBound], as: UTF8.self)
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if received.count >= end.upperBound + length { return Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0 }
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { throw DaemonBench.BenchFailure(description: "connection closed") }
            received += buffer[0..<count]
        }
    }
}
