/// What a start collects in one pass over the cache, device by device: the expiry and refresh
/// plans, the values the socket serves, and each valid value's file, handed to the
/// `Republisher` in batches as soon as they are made. Everything else is handed over at once
/// afterwards: with 100,000 devices a start is otherwise mostly hashing device ids.
///
/// Devices are planned by their position in the configuration's `DeviceTable`, which the parts
/// that take the plans (the heaps, the served documents) share: no id is hashed again there.
struct StartPlan {
    let wall: Double
    let mono: Double
    let republisher: Republisher?
    private(set) var expiries: [(slot: Int, deadline: Double)] = []
    private(set) var refreshes: [(slot: Int, deadline: Double, failures: Int)] = []
    private(set) var entries: [(slot: Int, entry: ServedDocuments.Entry)] = []
    /// Devices with a valid value, and how many files were made for the republisher.
    private(set) var valid = 0
    private(set) var published = 0
    private var batch: [(id: String, document: AuthInfoDocument)] = []

    /// `wall`, `mono`: one reading of each clock for the whole start.
    init(devices: Int, wall: Double, mono: Double, republisher: Republisher?) {
        self.wall = wall
        self.mono = mono
        self.republisher = republisher
        expiries.reserveCapacity(devices)
        refreshes.reserveCapacity(devices)
        entries.reserveCapacity(devices)
        batch.reserveCapacity(Republisher.batchSize)
    }

    /// Whether the start writes `record`'s file: a valid value that makes a document. The one
    /// rule both for what the writers write and for what `Publisher.removeStale` spares; a file
    /// in neither would be missing after READY, and one in both deleted just after its writing.
    static func writesFile(_ record: DeviceRecord, _ document: AuthInfoDocument?, at wall: Double) -> Bool {
        document != nil && record.isValid(at: wall)
    }

    /// Plans the configured device at `slot` (its position in the table), `id` as the config
    /// spells it, whose first attempt is `delay` seconds away; returns its record as planned
    /// (the attempt recorded).
    mutating func add(_ record: DeviceRecord, at slot: Int, as id: String, delay: Double) -> DeviceRecord {
        var record = record
        let isValid = record.isValid(at: wall)
        let expiry = isValid ? mono + (record.expiresAt! - wall) : nil
        if let expiry {
            expiries.append((slot, expiry))
            valid += 1
        }
        // Nothing is in flight and no outage is known yet: the next attempt is the plan.
        let due = mono + delay
        refreshes.append((slot, due, record.consecutiveFailures))
        record.nextAttemptAt = wall + delay
        // What `updateServed` would make, without looking the device up again. The file's JSON
        // is rendered by the writer threads alone: this thread renders none (the tag is made
        // from the document's fields) and keeps no copy of one.
        guard let document = AuthInfoDocument(record) else { return record }
        let entry = Refresher.servedEntry(document, record, expiresAt: expiry ?? mono, dueAt: due)
        entries.append((slot, entry))
        if Self.writesFile(record, document, at: wall) {
            batch.append((id, document))
            published += 1
            if batch.count == Republisher.batchSize { handOver() }
        }
        return record
    }

    /// Hands the files not yet handed over to the republisher.
    mutating func handOver() {
        republisher?.add(batch)
        batch.removeAll(keepingCapacity: true)
    }
}
