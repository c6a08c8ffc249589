import Foundation
import Testing
@testable import AuthInfoDaemon

/// The summary line (READY=1's STATUS, SIGUSR1, the periodic `summary` event) is counted by a
/// pass of its own that makes no row per device: it must say exactly what the full report's
/// rows add up to, in every state.
@Suite struct StatusSummaryTests {
    @Test func theSummaryPassSaysWhatTheReportsRowsSay() throws {
        let site = try Site()
        try site.writeConfig(site.config(devices: 8))
        let (configuration, credentials) = try ConfigLoader.loadWithSecrets(path: site.configPath, environment: [:])
        let now = Date().timeIntervalSince1970
        func record(_ number: Int, expiresIn: Double?, change: (inout DeviceRecord) -> Void = { _ in }) -> DeviceRecord {
            var record = DeviceRecord(deviceID: String(format: "dev-%04d", number))
            if let expiresIn {
                record.authinfo = "value-\(number)"
                record.fetchedAt = now - 60
                record.expiresAt = now + expiresIn
            }
            change(&record)
            return record
        }
        // fresh (two), stale (failing), expired, rejected, needs_raw_data, a failure without a
        // value (pending), and dev-0008 with no row at all (pending).
        try AuthInfoStore(path: configuration.storage.database).save([record(1, expiresIn: 3000), record(2, expiresIn: 1200),
                        record(3, expiresIn: 900) { $0.consecutiveFailures = 2 },
                        record(4, expiresIn: -10),
                        record(5, expiresIn: 2000) { $0.rejected = true },
                        record(6, expiresIn: 2500) { $0.needsRawData = true },
                        record(7, expiresIn: nil) { $0.consecutiveFailures = 1 }])

        let logFD = open("/dev/null", O_WRONLY)
        defer { close(logFD) }
        let refresher = Refresher(configuration: configuration, credentials: credentials, logger: Logger(level: .error, fd: logFD, environment: [:]),
                                  clock: .system, notifier: SystemdNotifier(environment: [:]), random: { 0.5 })
        // Opened and planned, never scheduled: nothing changes between the two passes.
        #expect(try refresher.open() == 5)
        defer { refresher.stop(timeout: 3) }
        let (summary, report) = refresher.onQueueSync { ($0.statusSummaryOnQueue(), $0.statusReportOnQueue()) }
        #expect(summary.devices == 8)
        #expect(summary == StatusSummary(rows: report), "the pass: \(summary.line); the rows: \(StatusSummary(rows: report).line)")
        for (state, count) in [(DeviceState.fresh, 2), (.stale, 1), (.expired, 1), (.rejected, 1), (.needsRawData, 1), (.pending, 2)] {
            #expect(summary.count(state) == count, "\(state): \(summary.line)")
        }
        #expect(summary.runway == 0, "a device without a value leaves no runway")
    }
}

extension StatusSummary {
    /// The summary of `report`'s rows, added up here rather than by `report.summary`, whose
    /// timestamp is the report's own.
    init(rows report: StatusReport) {
        self = report.devices.reduce(into: StatusSummary()) { $0.add($1, at: report.generatedAt) }
    }
}
