import Foundation
import WeChatPay

/// `authinfod-bench http`: GET authinfo over TCP loopback with `wrk -t1 -c32`, side by side with
/// nginx (one worker) serving the same published file. Needs `wrk` and `nginx` installed.
enum HTTPBench {
    /// Medians of `rounds` wrk runs against each server.
    struct Figures {
        let daemonRate: Double
        let daemonP99: Double
        let nginxRate: Double
        let nginxP99: Double
    }

    @discardableResult
    static func run(seconds: Int, rounds: Int, quiet: Bool = false) throws -> Figures {
        for tool in ["/usr/bin/wrk", "/usr/sbin/nginx"] where !FileManager.default.fileExists(atPath: tool) {
            throw DaemonBench.BenchFailure(description: "\(tool) is missing: apt-get install wrk nginx-light")
        }
        let directory = NSTemporaryDirectory() + "/authinfod-http-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let merchantKey = try RSAPrivateKey(generatingBits: 2048)
        try merchantKey.publicKeyPEM().write(toFile: directory + "/merchant.pub", atomically: true, encoding: .utf8)
        try DaemonBench.write(directory + "/apiclient_key.pem", merchantKey.pkcs8PEM(), mode: 0o600)
        let gateway = try DaemonBench.startGateway(directory)
        defer { gateway.process.terminate() }
        let daemonPort = 18787, nginxPort = 18788
        let token = SecureRandom.alphanumeric(32)
        let config: [String: Any] = [
            "merchant": ["mchid": mchid, "serial_no": serial, "private_key_file": "apiclient_key.pem",
                         "wechatpay_public_key_id": gateway.keyID, "wechatpay_public_key_file": "pub_key.pem"],
            "api": ["base_url": "http://127.0.0.1:\(gateway.port)"],
            "storage": ["database": "authinfo.db", "publish_dir": "devices"],
            "listen": ["unix_socket": NSNull(), "tcp": "127.0.0.1:\(daemonPort)",
                       "tcp_clients": [["name": "bench", "token": token, "devices": ["dev-000001"]]]],
            "log": ["level": "warning"],
            "device_defaults": ["sp_appid": "wx8888888888888888", "sub_mchid": "1900000999", "organization_id": "org-1"],
            "devices": (1...4).map { ["device_id": String(format: "dev-%06d", $0), "raw_data": "RAW"] },
        ]
        // The token is inline, so the config is the owner's alone.
        try DaemonBench.write(directory + "/authinfod.json", String(decoding: JSONSerialization.data(withJSONObject: config), as: UTF8.self), mode: 0o600)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("authinfod").path
        let daemon = try DaemonBench.startDaemon(binary, directory, log: "daemon.log")
        defer { DaemonBench.stop(daemon) }
        try DaemonBench.waitFor(files: 4, in: directory + "/devices", timeout: 30)

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
                listen 127.0.0.1:\(nginxPort);
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

        var daemonRuns: [(Double, Double)] = [], nginxRuns: [(Double, Double)] = []
        for _ in 0..<rounds {
            daemonRuns.append(try wrk("http://127.0.0.1:\(daemonPort)/v1/devices/dev-000001/authinfo", header: "Authorization: Bearer \(token)", seconds: seconds))
            nginxRuns.append(try wrk("http://127.0.0.1:\(nginxPort)/dev-000001.json", header: nil, seconds: seconds))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let daemonRate = median(daemonRuns.map(\.0)), nginxRate = median(nginxRuns.map(\.0))
        let figures = Figures(daemonRate: daemonRate, daemonP99: median(daemonRuns.map(\.1)), nginxRate: nginxRate, nginxP99: median(nginxRuns.map(\.1)))
        if !quiet {
            print("wrk -t1 -c32, \(seconds) s × \(rounds) rounds each (medians), loopback")
            print(String(format: "authinfod GET /v1/devices/{id}/authinfo (bearer token): %8.0f req/s, p99 %.2f ms", daemonRate, figures.daemonP99))
            print(String(format: "nginx (1 worker) GET /{id}.json (same file):           %8.0f req/s, p99 %.2f ms", nginxRate, figures.nginxP99))
            print(String(format: "ratio authinfod/nginx: %.2f×", daemonRate / nginxRate))
        }
        return figures
    }

    /// Runs wrk and returns (requests/s, p99 latency in ms).
    static func wrk(_ url: String, header: String?, seconds: Int) throws -> (Double, Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
        process.arguments = ["-t1", "-c32", "-d\(seconds)s", "--latency"] + (header.map { ["-H", $0] } ?? []) + [url]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let rateLine = text.split(separator: "\n").first(where: { $0.hasPrefix("Requests/sec:") }),
              let rate = Double(rateLine.split(separator: " ").last ?? ""),
              let p99Line = text.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("99%") }) else {
            throw DaemonBench.BenchFailure(description: "unreadable wrk output:\n\(text)")
        }
        if text.contains("Non-2xx") { throw DaemonBench.BenchFailure(description: "wrk saw errors:\n\(text)") }
        let value = p99Line.split(separator: " ").last.map(String.init) ?? ""
        let number = Double(value.filter { $0.isNumber || $0 == "." }) ?? 0
        let p99 = value.hasSuffix("us") ? number / 1000 : value.hasSuffix("ms") ? number : number * 1000
        return (rate, p99)
    }
}
