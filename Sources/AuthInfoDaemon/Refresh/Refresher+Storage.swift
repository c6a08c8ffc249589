import Dispatch

extension Refresher {
    /// Seconds between attempts to write the cache and the files again while storage is failing.
    static let storageRepairInterval = 5.0

    /// How long a commit may wait for the `fdatasync` that makes it survive a power loss: every
    /// commit made meanwhile shares it (see `AuthInfoStore`).
    static let durableSyncDelay = 1.0

    /// Asks for `syncToDisk` within `durableSyncDelay` of this commit, unless one is already due.
    /// Nothing is scheduled while nothing is committed (an idle daemon does not wake for it).
    func scheduleDurableSync() {
        guard !durableSyncPending, store != nil else { return }
        durableSyncPending = true
        queue.asyncAfter(deadline: .now() + Self.durableSyncDelay) { [weak self] in self?.assumeIsolated { $0.syncStore() } }
    }

    /// Syncs the cache's commits to disk; a failure is a storage fault like a failed commit.
    func syncStore() {
        guard durableSyncPending else { return }
        durableSyncPending = false
        do {
            try store?.syncToDisk()
        } catch {
            noteStorageFault("storage_error", error.description, device: nil)
        }
    }

    /// Records a database or publish_dir failure: logged, shown in status and metrics, and
    /// retried every `storageRepairInterval` until the cache and every file are written again.
    /// Values stay served from memory meanwhile.
    func noteStorageFault(_ event: String, _ message: String, device: String?) {
        storageFault = message
        logger.error(event, ["device": device, "error": message,
                             "hint": "values stay served from memory and on the socket; free disk space or fix permissions, authinfod retries by itself"])
        guard storageRepairTimer == nil, !stopped else { return }
        let source = DispatchSource.makeTimerSource(queue: queue)
        source.schedule(deadline: .now() + Self.storageRepairInterval, repeating: Self.storageRepairInterval, leeway: .milliseconds(500))
        source.setEventHandler { [weak self] in self?.assumeIsolated { $0.repairStorage() } }
        source.resume()
        storageRepairTimer = source
    }

    /// Writes every record to the cache in one transaction, checkpoints and syncs it, and makes
    /// publish_dir match the valid values; when all succeed the fault is cleared and
    /// `storage_recovered` logged. A failure
    /// keeps the fault (with its newest message) for the next attempt.
    func repairStorage() {
        guard storageFault != nil, !stopped else { return }
        do {
            try store?.save(records.all)
            // Recovered only once the cache is on disk again, not on a later sync's promise.
            try store?.checkpoint()
            try store?.syncToDisk()
            durableSyncPending = false
            _ = try publisher.reconcile(validDocuments())
        } catch {
            storageFault = "\(error)"
            return
        }
        storageFault = nil
        storageRepairTimer?.cancel()
        storageRepairTimer = nil
        logger.info("storage_recovered", ["database": configuration.storage.database, "publish_dir": configuration.storage.publishDirectory,
                                          "devices": records.count])
    }

    /// The published document of every configured device whose value is valid now (monotonic clock).
    func validDocuments() -> [String: [UInt8]] {
        var documents: [String: [UInt8]] = [:]
        for id in devices.ids where expiries.deadline(of: id) != nil {
            if let record = records[id], let document = AuthInfoDocument(record) { documents[id] = document.json() }
        }
        return documents
    }
}
