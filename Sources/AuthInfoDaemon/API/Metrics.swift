import WeChatPay

/// Counters and a latency histogram for `GET /metrics` (Prometheus text exposition 0.0.4).
/// Owned by the daemon's queue.
struct Metrics {
    static let latencyBuckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Completed refreshes by (result, code): result is success, failure or rejected.
    private(set) var refreshes: [String: Int] = [:]
    private var latencyCounts = [Int](repeating: 0, count: latencyBuckets.count)
    private var latencySum = 0.0
    private var latencyCount = 0

    /// At most this many (result, code) series: codes come from the gateway's error bodies.
    static let maximumRefreshSeries = 64

    mutating func recordRefresh(result: String, code: String) {
        // A code is a label value; the gateway writes it, so it is held to what error codes look
        // like, and a flood of distinct ones is counted together instead of growing the page.
        var key = "\(result)\u{0}\(code.isEmpty || Self.isPlainCode(code) ? code : "unreadable_code")"
        if refreshes[key] == nil, refreshes.count >= Self.maximumRefreshSeries { key = "\(result)\u{0}other" }
        refreshes[key, default: 0] += 1
    }

    /// 1 to 64 ASCII letters, digits, `_`, `.` or `-` (PARAM_ERROR, HTTP_502, transport); a
    /// success has the empty code.
    static func isPlainCode(_ code: String) -> Bool {
        (1...64).contains(code.utf8.count) && code.utf8.allSatisfy {
            (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D
        }
    }

    /// Completed refreshes with `result`, all codes together.
    func refreshCount(result: String) -> Int {
        refreshes.filter { $0.key.hasPrefix(result + "\u{0}") }.values.reduce(0, +)
    }

    mutating func recordLatency(_ seconds: Double) {
        for (index, bound) in Self.latencyBuckets.enumerated() where seconds <= bound { latencyCounts[index] += 1 }
        latencySum += seconds
        latencyCount += 1
    }

    /// The text of `GET /metrics`; with `perDevice`, each device's expiry as its own series.
    func exposition(_ report: StatusReport, version: String, storageFault: Bool, perDevice: Bool) -> String {
        var lines: [String] = []
        lines += ["# HELP authinfod_build_info Build information.", "# TYPE authinfod_build_info gauge",
                  "authinfod_build_info{version=\"\(version)\"} 1"]
        lines += ["# HELP authinfod_devices Configured devices by state.", "# TYPE authinfod_devices gauge"]
        for state in DeviceState.allCases { lines.append("authinfod_devices{state=\"\(state.rawValue)\"} \(report.count(state))") }
        lines += ["# HELP authinfod_runway_seconds Seconds until the first device's authinfo expires.", "# TYPE authinfod_runway_seconds gauge",
                  "authinfod_runway_seconds \(Int(report.runway ?? 0))"]
        lines += ["# HELP authinfod_refreshes_total Completed refreshes by result and error code.", "# TYPE authinfod_refreshes_total counter"]
        for (key, count) in refreshes.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            lines.append("authinfod_refreshes_total{result=\"\(parts[0])\",code=\"\(Self.escape(String(parts[1])))\"} \(count)")
        }
        lines += ["# HELP authinfod_gateway_request_duration_seconds Latency of authinfo calls to the gateway.",
                  "# TYPE authinfod_gateway_request_duration_seconds histogram"]
        for (index, bound) in Self.latencyBuckets.enumerated() {
            lines.append("authinfod_gateway_request_duration_seconds_bucket{le=\"\(bound)\"} \(latencyCounts[index])")
        }
        lines.append("authinfod_gateway_request_duration_seconds_bucket{le=\"+Inf\"} \(latencyCount)")
        lines.append("authinfod_gateway_request_duration_seconds_sum \(latencySum)")
        lines.append("authinfod_gateway_request_duration_seconds_count \(latencyCount)")
        lines += ["# HELP authinfod_gateway_connections_opened_total Connections opened to the gateway (with a TLS handshake each over https); kept alive, far fewer than requests.",
                  "# TYPE authinfod_gateway_connections_opened_total counter", "authinfod_gateway_connections_opened_total \(WeChatPayClient.connectionsOpened)"]
        if let offset = report.clockOffsetSeconds {
            lines += ["# HELP authinfod_clock_offset_seconds Seconds the gateway's clock is ahead of this host's (negative: behind), from verified answers.",
                      "# TYPE authinfod_clock_offset_seconds gauge", "authinfod_clock_offset_seconds \(Int(offset))"]
        }
        if perDevice {
            lines += ["# HELP authinfod_device_expires_at_seconds When the device's authinfo expires (Unix seconds; in the past when it has); devices with no value have no series.",
                      "# TYPE authinfod_device_expires_at_seconds gauge"]
            for device in report.devices {
                guard let expiresAt = device.expiresAt, device.fetchedAt != nil else { continue }
                lines.append("authinfod_device_expires_at_seconds{device=\"\(Self.escape(device.deviceID))\"} \(Int(expiresAt.rounded(.down)))")
            }
        }
        lines += ["# HELP authinfod_storage_fault Whether the database or publish folder is failing.", "# TYPE authinfod_storage_fault gauge",
                  "authinfod_storage_fault \(storageFault ? 1 : 0)"]
        return lines.joined(separator: "\n") + "\n"
    }

    static func escape(_ value: String) -> String {
        // By scalar, not by Character: "\r\n" or a quote followed by a combining mark is one
        // Character, and would pass unescaped.
        var escaped = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": escaped.append(contentsOf: "\\\\".unicodeScalars)
            case "\"": escaped.append(contentsOf: "\\\"".unicodeScalars)
            case "\n": escaped.append(contentsOf: "\\n".unicodeScalars)
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}
