import Foundation
import Testing
@testable import AuthInfoDaemon

/// The metrics page stays valid Prometheus text whatever the gateway writes into an error code
/// (found by a review: the label escaping went by Character, so "\r\n" or a quote followed by
/// a combining mark passed unescaped, and one such answer made every later scrape fail).
@Suite struct MetricsTextTests {
    private func page(_ metrics: Metrics, devices: [DeviceStatus] = []) -> String {
        metrics.exposition(StatusReport(generatedAt: 1_800_000_000, source: "daemon", devices: devices), version: "test", storageFault: false, perDevice: true)
    }

    @Test func hostileErrorCodesCannotBreakTheScrapeNorGrowItWithoutBound() throws {
        var metrics = Metrics()
        metrics.recordRefresh(result: "success", code: "")
        metrics.recordRefresh(result: "failure", code: "SYSTEM_ERROR")
        metrics.recordRefresh(result: "failure", code: "X\r\nY")
        metrics.recordRefresh(result: "failure", code: "A\"\u{301}")
        metrics.recordRefresh(result: "failure", code: "back\\slash")
        for index in 0..<500 { metrics.recordRefresh(result: "failure", code: "CODE_\(index)") }
        let text = page(metrics)
        #expect(text.contains("authinfod_refreshes_total{result=\"success\",code=\"\"} 1\n"))
        #expect(text.contains("authinfod_refreshes_total{result=\"failure\",code=\"SYSTEM_ERROR\"} 1\n"))
        #expect(text.contains("authinfod_refreshes_total{result=\"failure\",code=\"unreadable_code\"} 3\n"))
        let series = text.split(separator: "\n").filter { $0.hasPrefix("authinfod_refreshes_total{") }
        #expect(series.count == Metrics.maximumRefreshSeries + 1, "64 series, then one for the rest: \(series.count)")
        let other = try #require(series.first { $0.contains("code=\"other\"") })
        #expect(other.hasSuffix(" \(500 - (Metrics.maximumRefreshSeries - 3))"))
        // Whatever reaches the page is escaped scalar by scalar.
        #expect(Metrics.escape("a\"\u{301}b\\c\r\nd") == "a\\\"\u{301}b\\\\c\r\\nd")

        let promtool = try OperatorFilesTests.tool("promtool", package: "prometheus")
        let file = NSTemporaryDirectory() + "authinfod-metrics-\(getpid()).txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let check = try Binary.run(["-c", "\"$0\" check metrics < \"$1\"", promtool, file], executable: "/bin/sh")
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }
}
