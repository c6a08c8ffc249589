import Foundation
import Testing

/// The gateway's clock as the daemon measures it from verified answers: status, metrics, a
/// warning past 60 s, and socket answers that carry their own Date.
@Suite struct GatewayClockTests {
    @Test func aGatewayClockNinetySecondsAheadIsMeasuredShownAndWarnedAbout() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let status = try api.unix("/v1/status")
        #expect(status.body.contains("\"clock_offset_seconds\":0") || status.body.contains("\"clock_offset_seconds\":-1")
                || status.body.contains("\"clock_offset_seconds\":1"), "in step at first: \(status.body.prefix(300))")
        #expect(!api.daemon.log.contains("event=clock_offset"))

        api.site.simulator.clockSkew = 90
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        api.daemon.wait(10, "the warning") { api.daemon.log.contains("level=warning event=clock_offset") }
        let warning = api.daemon.log.split(separator: "\n").first { $0.contains("event=clock_offset") } ?? ""
        #expect((89...91).contains { warning.contains("offset_seconds=\($0) ") } && warning.contains("behind the gateway's"), "\(warning)")
        let report = try api.unix("/v1/status").body
        let offset = try #require(report.firstRange(of: "\"clock_offset_seconds\":").map { report[$0.upperBound...].prefix { $0 != "," } })
        #expect((89...91).contains(Int(offset) ?? 0), "\(offset)")
        let metrics = try api.unix("/metrics").body
        #expect((89...91).contains { metrics.contains("\nauthinfod_clock_offset_seconds \($0)\n") }, "\(metrics.suffix(400))")
        let table = try Binary.run(["status", "--config", api.site.configPath])
        #expect(table.stdout.contains("gateway clock:") && table.stdout.contains("ahead of this host's (more than 60 s"), "\(table.stdout)")
        // Still within the gateway's 300 s: refreshes keep working.
        #expect(api.daemon.log.split(separator: "\n").filter { $0.contains("event=refreshed device=dev-0001") }.count >= 2)

        api.site.simulator.clockSkew = 0
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        api.daemon.wait(10, "back in step") { api.daemon.log.contains("level=info event=clock_offset") }
    }

    @Test func socketAnswersCarryADateField() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let answer = Wire.raw(port: api.port, Array("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
        let date = try #require(answer.split(separator: "\r\n").first { $0.hasPrefix("Date: ") })
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let parsed = try #require(formatter.date(from: String(date.dropFirst(6))), "\(date)")
        #expect(abs(parsed.timeIntervalSinceNow) < 3)
    }
}
