import Foundation
import HTTPServer
import WeChatPay

extension Daemon {
    /// Applies a new, already validated configuration (SIGHUP): devices added, removed or
    /// changed; refresh settings, gateway credentials, hook, listeners and log level. The cache
    /// and every value in it are kept. Storage paths need a restart (logged). Rejected devices
    /// are retried at once. Tells systemd RELOADING=1 … READY=1 around it.
    public func reload(_ new: Configuration, credentials newCredentials: MerchantCredentials) {
        notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())")
        queue.sync { reloadOnQueue(new, newCredentials) }
        notifier.notify("READY=1\nSTATUS=\(statusReport().summaryLine)")
    }

    private func reloadOnQueue(_ proposed: Configuration, _ newCredentials: MerchantCredentials) {
        guard !stopped else { return }
        var new = proposed
        var needsRestart: [String] = []
        if new.storage.database != configuration.storage.database || new.storage.publishDirectory != configuration.storage.publishDirectory {
            needsRestart.append("storage")
            new.storage = configuration.storage
        }
        let old = configuration
        configuration = new
        credentials = newCredentials
        logger.setLevel(new.log.level)
        scheduler.update(.init(new.refresh))
        if let store { client = WeChatPayClient(configuration: clientConfiguration(store), reusingConnectionsOf: client) }
        if new.onChange != old.onChange {
            // Runs in progress finish (or time out) under the old settings; no more start there.
            hook?.retire()
            hook = new.onChange.map { ChangeHook($0, logger: logger) }
        }

        let wall = clock.wall(), mono = clock.monotonic()
        let newIDs = Set(new.devices.map(\.id))
        var removed = 0, added = 0, changed = 0
        let oldDevices = devices
        devices = DeviceTable(new.devices)
        for id in oldDevices.ids where !newIDs.contains(id) {
            scheduler.remove(id)
            expiries.remove(id)
            served.set(id, nil)
            publisher.remove(id)
            removed += 1
        }
        for device in new.devices {
            let previous = oldDevices[device.id]
            var record = records[device.id] ?? DeviceRecord(deviceID: device.id)
            if previous == nil {
                added += 1
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
                changed += 1
                if previous?.rawData != device.rawData || record.rejected { scheduler.schedule(device.id, at: mono) }
            } else if record.rejected {
                scheduler.schedule(device.id, at: mono)
            }
            record.nextAttemptAt = scheduler.nextAttempt(of: device.id, now: mono).map { wall + ($0 - mono) }
            records[device.id] = record
            updateServed(device.id)
        }
        served.configure(devices: newIDs)

        if !Self.sameListeners(old.listen, new.listen) {
            for server in servers { server.shutdown() }
            servers.removeAll()
            do {
                try startListeners()
            } catch {
                logger.error("reload", ["result": "listeners_failed", "error": error.description,
                                        "hint": "keeping the previous listeners; fix the listen section and send SIGHUP again"])
                configuration.listen = old.listen
                for server in servers { server.shutdown() }
                servers.removeAll()
                try? startListeners()
            }
        }
        logger.info("reload", ["result": "applied", "devices": devices.count, "added": added, "removed": removed, "changed": changed,
                               "needs_restart": needsRestart.isEmpty ? nil : needsRestart.joined(separator: ",")])
        tick()
    }

    static func sameListeners(_ a: Configuration.Listen, _ b: Configuration.Listen) -> Bool {
        a.unixSocket == b.unixSocket && a.unixSocketMode == b.unixSocketMode && a.tcp?.host == b.tcp?.host && a.tcp?.port == b.tcp?.port
            && a.tcpClients.map { "\($0.name)|\($0.tokenSource)|\($0.inlineToken ?? "")|\($0.devices)|\($0.admin)" }
            == b.tcpClients.map { "\($0.name)|\($0.tokenSource)|\($0.inlineToken ?? "")|\($0.devices)|\($0.admin)" }
    }
}
