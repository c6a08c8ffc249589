import FoundationEssentials
import WeChatPay

extension Refresher {
    /// What a reload changed, for its log line.
    struct ReloadSummary: Sendable {
        var added = 0, removed = 0, changed = 0
        var needsRestart: [String] = []
    }

    /// Applies a new, already validated configuration: devices added, removed or changed;
    /// refresh settings, gateway credentials, hook and log level. The cache and every value in
    /// it are kept; the scheduler keeps its plans, its in-flight refreshes and its rate limiter's
    /// history. Storage paths need a restart (reported). Rejected devices are retried at once.
    nonisolated func apply(_ new: Configuration, credentials newCredentials: MerchantCredentials) -> ReloadSummary {
        onQueueSync { $0.applyOnQueue(new, newCredentials) }
    }

    private func applyOnQueue(_ proposed: Configuration, _ newCredentials: MerchantCredentials) -> ReloadSummary {
        var summary = ReloadSummary()
        guard !stopped else { return summary }
        var new = proposed
        if new.storage.database != configuration.storage.database || new.storage.publishDirectory != configuration.storage.publishDirectory {
            summary.needsRestart.append("storage")
            new.storage = configuration.storage
        }
        let old = configuration
        configuration = new
        credentials = newCredentials
        logger.setLevel(new.log.level)
        scheduler.update(new.refresh)
        if let store { client = WeChatPayClient(configuration: clientConfiguration(store), reusingConnectionsOf: client) }
        if new.onChange != old.onChange {
            // Runs in progress finish (or time out) under the old settings; no more start there.
            hook?.retire()
            hook = new.onChange.map { ChangeHook($0, logger: logger) }
        }

        let wall = clock.wall(), mono = clock.monotonic()
        let oldDevices = devices
        devices = DeviceTable(new.devices)
        records.reconfigure(devices)
        scheduler.reconfigure(devices)
        expiries.rekey(devices)
        // Served values follow the table first: a removed device's goes, and its long-polls are
        // answered 404 (unknown device), not 503 (no value yet); an added one's is served below.
        served.configure(devices: devices)
        // Their plans and expiries went with the new table; a refresh still out for one of them
        // ends unheard (`orphaned`), or is taken up again if the device is added back meanwhile.
        for id in oldDevices.ids where !devices.contains(id) {
            publisher.remove(id)
            summary.removed += 1
        }
        for device in new.devices {
            let previous = oldDevices[device.id]
            var record = records[device.id] ?? DeviceRecord(deviceID: device.id)
            if previous == nil {
                summary.added += 1
                if record.isValid(at: wall), let document = AuthInfoDocument(record) {
                    do {
                        try publisher.write(device.id, document.json())
                    } catch {
                        noteStorageFault("publish_failed", error.description, device: device.id)
                    }
                    expiries.set(device.id, mono + (record.expiresAt! - wall))
                }
                scheduler.schedule(device.id, at: mono + initialDelay(record, wall: wall), failures: record.consecutiveFailures)
            } else if previous != device {
                summary.changed += 1
                if previous?.rawData != device.rawData || record.rejected || record.needsRawData { scheduler.schedule(device.id, at: mono) }
            } else if record.rejected || record.needsRawData {
                scheduler.schedule(device.id, at: mono)
            }
            record.nextAttemptAt = scheduler.nextAttempt(of: device.id, now: mono).map { wall + ($0 - mono) }
            records[device.id] = record
            updateServed(device.id)
        }
        tick()
        return summary
    }
}
