import Foundation
import Testing
@testable import AuthInfoDaemon

/// The summary line (READY=1's STATUS, SIGUSR1, the periodic `summary` event) is counted by a
/// pass of its own that makes no row per device: it must say exactly what the full report's
/// rows add up to, in every state.
@Suite struct StatusSummaryTests {
    @Test func theSummaryPassSaysWhatTheReportsRowsSay() throws {
        let site = try Site()
        // The gateway is down (nothing listens on port 1): a refresh the reload starts changes no
        // device's state while the test counts them.
        try site.writeConfig(site.config(devices: 8, extra: ["api": ["base_url": "http://127.0.0.1:1", "timeout_seconds": 2]]))
        let (configuration, credentials) = try ConfigLoader.loadWithSecrets(path: site.configPath, environment: [:])
        let now = Date().timeIntervalSince1970
        func record(_ number: Int, expiresIn: Double?, change: (inout DeviceRecord) -> Void = { _ in }) -> DeviceRecord {
            var record = DeviceRecord(deviceID: String(format: "dev-%04d", number))
            if let expiresIn {
                record.authinfo = "value-\(number)"
                record.fetchedAt = now - 60
                record.expiresAt = now + expiresIn
                // Not due for ten minutes: fresh however slowly the test runs.
                record.nextAttemptAt = now + 600
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

        // A reload reorders the devices, drops one and adds one: the passes by position follow
        // the new table, each row saying what the lookups by id say.
        var reloaded = configuration
        var added = configuration.devices[0]
        added.id = "dev-0009"
        reloaded.devices = configuration.devices.reversed().filter { $0.id != "dev-0002" } + [added]
        _ = refresher.apply(reloaded, credentials: credentials)
        let (after, rows, lookups) = refresher.onQueueSync { refresher in
            let mono = refresher.clock.monotonic()
            return (refresher.statusSummaryOnQueue(), refresher.statusReportOnQueue(),
                    reloaded.devices.map { (refresher.expiresAtMonotonic($0.id, now: mono), refresher.scheduler.nextAttempt(of: $0.id, now: mono), mono) })
        }
        #expect(rows.devices.map(\.deviceID) == reloaded.devices.map(\.id), "the rows in the new order")
        #expect(after == StatusSummary(rows: rows), "the pass: \(after.line); the rows: \(StatusSummary(rows: rows).line)")
        #expect(after.devices == 8 && after.count(.pending) == 3 && after.count(.fresh) == 1, "\(after.line)")
        for (row, (expires, next, mono)) in zip(rows.devices, lookups) {
            let shift = rows.generatedAt - mono
            if let expires, row.fetchedAt != nil { #expect(abs((row.expiresAt ?? 0) - (expires + shift)) < 1, "\(row.deviceID) expiry") }
            #expect((row.nextAttemptAt == nil) == (next == nil), "\(row.deviceID) next attempt")
            if let next, let planned = row.nextAttemptAt { #expect(abs(planned - (next + shift)) < 1, "\(row.deviceID) next attempt") }
        }
    }
}

extension StatusSummary {
    /// The summary of `report`'s rows, added up here rather than by `report.summary`, whose
    /// timestamp is the report's own.
    init(rows report: StatusReport) {
        self = report.devices.reduce(into: StatusSummary()) { $0.add($1, at: report.generatedAt) }
    }
}
