import Foundation
import WeChatPay

/// `make bench`: every performance figure measured in one run on this machine, next to the
/// reference measured in the same run and the target, as a table.
enum BenchReport {
    struct Row {
        let figure: String
        let measured: String
        let reference: String
        let ratio: String
        let target: String
        let met: Bool
    }

    static func run(devices: Int, large: Int, pythonClient: String?) throws {
        let machine = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        print("authinfod bench, \(ISO8601DateFormatter().string(from: Date())), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(machine)")
        print("measuring: RSA sign cost, \(devices) devices (fill, idle, restart, wechatpayv3), HTTP vs nginx, \(large) devices …")
        let signCost = try signCPUSeconds(try RSAPrivateKey(generatingBits: 2048), calls: 2000)
        let small = try DaemonBench.run(devices: devices, pythonClient: pythonClient, quiet: true)
        let http = try HTTPBench.run(seconds: 5, rounds: 3, quiet: true)
        let https = try HTTPBench.run(seconds: 5, rounds: 3, tls: true, quiet: true)
        let big = try DaemonBench.run(devices: large, quiet: true)

        func ms(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }
        func times(_ value: Double) -> String { String(format: "%.2f×", value) }
        var rows = [
            Row(figure: "CPU per refresh (\(devices) devices)", measured: ms(small.cpuPerRefresh), reference: "RSA-2048 sign \(ms(signCost))",
                ratio: times(small.cpuPerRefresh / signCost), target: "≤ 2.0×", met: small.cpuPerRefresh / signCost <= 2.0),
        ]
        if let python = small.pythonCPUPerCall {
            rows.append(Row(figure: "CPU per refresh vs wechatpayv3", measured: ms(small.cpuPerRefresh), reference: "wechatpayv3 \(ms(python))",
                            ratio: times(python / small.cpuPerRefresh) + " less", target: "≥ 3× less", met: python / small.cpuPerRefresh >= 3))
        } else {
            rows.append(Row(figure: "CPU per refresh vs wechatpayv3", measured: ms(small.cpuPerRefresh), reference: "not run (--python-client)",
                            ratio: "—", target: "≥ 3× less", met: false))
        }
        rows += [
            Row(figure: "RSS, \(devices) devices cached and published", measured: String(format: "%.1f MB idle, %.1f MB after a restart", small.rssIdleMB, small.restartRSSMB),
                reference: String(format: "%.1f MB at the end of the fill", small.rssAfterFillMB), ratio: "—", target: "≤ 40 MB",
                met: max(small.rssIdleMB, small.restartRSSMB) <= 40),
            Row(figure: "restart, \(devices) cached, gateway down, files wiped", measured: String(format: "READY %.2f s, files %.2f s", small.readySeconds, small.allFilesSeconds),
                reference: "—", ratio: "—", target: "≤ 0.5 s, ≤ 2 s", met: small.readySeconds <= 0.5 && small.allFilesSeconds <= 2),
            Row(figure: "idle context switches in 10 s", measured: "\(small.idleContextSwitches)", reference: "—", ratio: "—", target: "≤ 25",
                met: small.idleContextSwitches <= 25),
            Row(figure: "GET authinfo, TCP, wrk -t1 -c32", measured: String(format: "%.0f req/s, p99 %.2f ms, %.1f µs CPU/req", http.daemonRate, http.daemonP99, http.daemonCPU),
                reference: String(format: "nginx %.0f req/s, p99 %.2f ms, %.1f µs CPU/req", http.nginxRate, http.nginxP99, http.nginxCPU), ratio: times(http.daemonRate / http.nginxRate),
                target: "≥ 1.0×, p99 ≤ 5 ms", met: http.daemonRate >= http.nginxRate && http.daemonP99 <= 5),
            Row(figure: "GET authinfo, TLS keep-alive, wrk -t1 -c32", measured: String(format: "%.0f req/s, p99 %.2f ms, %.1f µs CPU/req", https.daemonRate, https.daemonP99, https.daemonCPU),
                reference: String(format: "nginx TLS %.0f req/s, p99 %.2f ms, %.1f µs CPU/req", https.nginxRate, https.nginxP99, https.nginxCPU), ratio: times(https.daemonRate / https.nginxRate),
                target: "≥ 1.0×", met: https.daemonRate >= https.nginxRate),
            Row(figure: "exchange, new raw_data each (one gateway call)", measured: String(format: "p50 %.2f ms, p99 %.2f ms", http.exchangeP50, http.exchangeP99),
                reference: String(format: "direct call p50 %.2f ms, p99 %.2f ms", http.directP50, http.directP99),
                ratio: times(http.exchangeP50 / http.directP50), target: "p50 ≤ direct + 2 ms (one durable commit)",
                met: http.exchangeP50 <= http.directP50 + 2),
        ]
        let scale = Double(large) / Double(devices)
        for (name, smallValue, bigValue, unit) in [("RSS idle", small.rssIdleMB, big.rssIdleMB, "MB"),
                                                   ("restart to all files", small.allFilesSeconds, big.allFilesSeconds, "s"),
                                                   ("fill time", small.fillSeconds, big.fillSeconds, "s")] {
            let growth = bigValue / smallValue
            rows.append(Row(figure: "\(large) devices: \(name)", measured: String(format: "%.1f %@", bigValue, unit),
                            reference: String(format: "%d devices: %.1f %@", devices, smallValue, unit), ratio: times(growth),
                            target: "≤ \(Int(scale))× (+5 % noise)", met: growth <= scale * 1.05))
        }
        print(table(rows))
        print("\(rows.filter(\.met).count) of \(rows.count) targets met")
    }

    static func table(_ rows: [Row]) -> String {
        let header = ["figure", "measured", "reference", "ratio", "target", "met"]
        let cells = rows.map { [$0.figure, $0.measured, $0.reference, $0.ratio, $0.target, $0.met ? "yes" : "NO"] }
        let lines = [header] + cells
        return lines.map { "| " + $0.joined(separator: " | ") + " |" }
            .enumerated().flatMap { $0.offset == 0 ? [$0.element, "|" + String(repeating: " --- |", count: header.count)] : [$0.element] }
            .joined(separator: "\n")
    }
}
