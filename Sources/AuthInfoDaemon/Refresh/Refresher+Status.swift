import FoundationEssentials

extension Refresher {
    /// The live status of every configured device.
    nonisolated func statusReport() -> StatusReport {
        onQueueSync { $0.statusReportOnQueue() }
    }

    func statusReportOnQueue() -> StatusReport {
        let wall = clock.wall(), mono = clock.monotonic()
        var report = StatusReport(generatedAt: wall, source: "daemon", devices: (0..<devices.count).map { deviceStatus(at: $0, wall: wall, mono: mono) })
        report.clockOffsetSeconds = client?.gatewayClock.offsetSeconds
        if let storageFault { report.notes.append("storage fault: \(storageFault)") }
        return report
    }

    /// The summary of the live status (what `statusReport().summary` says, without the rows).
    nonisolated func statusSummary() -> StatusSummary {
        onQueueSync { $0.statusSummaryOnQueue() }
    }

    func statusSummaryOnQueue() -> StatusSummary {
        let wall = clock.wall(), mono = clock.monotonic()
        var summary = StatusSummary()
        // Each device's state, without making its row (`deviceStatus`) or copying its record: a
        // summary of 100,000 devices is on the way to every READY=1. A device without a record
        // counts as one with an empty record, as in its row.
        let empty = DeviceStatus.Facts(DeviceRecord(deviceID: ""))
        assert(records.follows(devices), "the records are by position in another table")
        for position in 0..<devices.count {
            let facts = records.stateFacts(configured: position) ?? empty
            let (expiresAt, next) = statusTimes(facts, at: position, wall: wall, mono: mono)
            summary.add(DeviceStatus.state(of: facts, expiresAt: expiresAt, nextAttemptAt: next, now: wall), fetchedAt: facts.fetchedAt,
                        expiresAt: expiresAt, at: wall)
        }
        return summary
    }

    /// The row in the status of the configured device at `position`, at these readings of the
    /// two clocks.
    private func deviceStatus(at position: Int, wall: Double, mono: Double) -> DeviceStatus {
        let (record, next) = statusRecord(at: position, wall: wall, mono: mono)
        return DeviceStatus(record, nextAttemptAt: next, now: wall)
    }

    /// The record of the configured device at `position` as its status row shows it: with its
    /// expiry as the daemon measures it, and its next attempt.
    private func statusRecord(at position: Int, wall: Double, mono: Double) -> (record: DeviceRecord, nextAttemptAt: Double?) {
        assert(records.follows(devices), "the records are by position in another table")
        var record = records[configured: position] ?? DeviceRecord(deviceID: devices.id(at: position))
        let (expiresAt, next) = statusTimes(DeviceStatus.Facts(record), at: position, wall: wall, mono: mono)
        record.expiresAt = expiresAt
        return (record, next)
    }

    /// The wall times a status row of the configured device at `position` (in `devices`, the
    /// table the expiries and the scheduler share) shows for a record with `facts`: its expiry
    /// as the daemon measures it (monotonic) in today's wall time (`expiresAtMonotonic`, by
    /// position), and its next attempt. By position: a summary of 100,000 devices hashes no id.
    private func statusTimes(_ facts: DeviceStatus.Facts, at position: Int, wall: Double, mono: Double) -> (expiresAt: Double?, nextAttemptAt: Double?) {
        assert(expiries.keys.isSame(as: devices), "the expiries are by position in another table")
        let expiresAt = facts.hasValue ? wall + ((expiries.deadline(atSlot: position) ?? mono) - mono) : facts.expiresAt
        return (expiresAt, scheduler.nextAttempt(atSlot: position, of: devices, now: mono).map { wall + ($0 - mono) })
    }

    /// The document a device reads, with its state, or nil when it has no value.
    nonisolated func document(for id: String) -> (document: AuthInfoDocument, state: AuthInfoDocument.State)? {
        onQueueSync { refresher in
            guard refresher.devices.contains(id), let record = refresher.records[id], let document = AuthInfoDocument(record),
                  case let mono = refresher.clock.monotonic(), let expires = refresher.expiresAtMonotonic(id, now: mono) else { return nil }
            return (document, .of(expiresAt: expires, needsRawData: record.needsRawData, failing: record.consecutiveFailures > 0,
                                  dueAt: refresher.scheduler.nextAttempt(of: id, now: mono), now: mono))
        }
    }

    /// Refreshes `ids` (all devices when nil) as soon as the rate allows.
    nonisolated func refreshNow(_ ids: [String]? = nil) {
        onQueue { $0.refreshNowOnQueue(ids) }
    }

    func refreshNowOnQueue(_ ids: [String]?) {
        let mono = clock.monotonic()
        for id in ids ?? devices.ids where devices.contains(id) {
            scheduler.schedule(id, at: mono)
        }
        tick()
    }

    /// Completed refreshes with `result` ("success", "failure" or "rejected").
    nonisolated func refreshCount(_ result: String) -> Int { onQueueSync { $0.metrics.refreshCount(result: result) } }
}
