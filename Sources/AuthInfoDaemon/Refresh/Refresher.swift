import Dispatch
import FoundationEssentials
import CLinux
import WeChatPay

/// Why the daemon could not start, or why a reload was refused.
public struct DaemonError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// The one owner of every device's truth — its record, refresh plan, expiry deadline and what
/// the socket serves — and of the refresh loop that keeps it fresh: the scheduler, the rate
/// limiter, the cache and the published files.
///
/// An actor whose executor is the Dispatch queue `queue`: the compiler proves every stored
/// property is touched only there. The entry points other threads call are `nonisolated` and
/// hop onto the queue (`onQueue`, `onQueueSync`); `served` is itself thread-safe. Gateway
/// exchanges run on the client's threads and are handled on them, inside the actor
/// (`queue.sync`). So code on `queue` must never wait for the gateway loop or an exchange
/// thread (it only posts work to them): that thread may be waiting for `queue`. One Dispatch
/// timer on `queue` is armed for the next deadline (a refresh, a retry, a probe or an expiry).
actor Refresher {
    private nonisolated let executor = QueueExecutor(label: "authinfod.refresh")
    /// The queue every piece of state lives on, and the timers fire on.
    nonisolated var queue: DispatchQueue { executor.queue }
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    var configuration: Configuration
    var credentials: MerchantCredentials
    nonisolated let notifier: SystemdNotifier
    var watchdogTimer: DispatchSourceTimer?
    /// When STATUS= was last sent (monotonic), to send it at most every 2 s.
    var lastStatusNotification = -Double.infinity
    nonisolated let logger: Logger
    nonisolated let clock: DaemonClock

    var store: AuthInfoStore?
    /// A `syncToDisk` of the cache is due within `durableSyncDelay` (Refresher+Storage).
    var durableSyncPending = false
    var client: WeChatPayClient?
    let publisher: Publisher
    let scheduler: RefreshScheduler
    /// Every device's record: empty until `open` reads the cache into it (once).
    var records: RecordTable
    var devices: DeviceTable
    /// Monotonic deadlines at which a device's value expires.
    var expiries: DeadlineHeap
    var timer: DispatchSourceTimer?
    /// The monotonic deadline `timer` is set for (nil: not set), so it is reprogrammed only
    /// when that changes (once per refresh otherwise).
    var timerDeadline: Double?
    var summaryTimer: DispatchSourceTimer?
    var stopped = false
    /// The last storage problem (database or publish folder), shown in status until it clears.
    var storageFault: String?
    /// While `storageFault` is set: retries writing the cache and the files (Refresher+Storage).
    var storageRepairTimer: DispatchSourceTimer?
    var metrics = Metrics()
    /// When each in-flight refresh started (monotonic), for the latency histogram.
    var startedAt: [String: Double] = [:]
    /// The raw_data (`RawDataDigest`) each in-flight refresh sent.
    var sentRawData: [String: RawDataDigest] = [:]
    /// Exchanges waiting for their device's refresh, and the last token handed out.
    var exchanges: [String: [PendingExchange]] = [:]
    var nextExchangeToken = 0
    /// Refreshes finished since the allocator was last trimmed (see `tick`).
    var refreshesSinceTrim = 0
    /// A trim is queued after a large answer (`trimSoon`), and when the last trim ran (`trim`).
    var trimPending = false
    var lastTrim = -Double.infinity
    /// What the socket serves, readable from the listeners' threads without a hop onto `queue`.
    nonisolated let served: ServedDocuments
    var hook: ChangeHook?

    init(configuration: Configuration, credentials: MerchantCredentials, logger: Logger, clock: DaemonClock,
         notifier: SystemdNotifier, random: @escaping () -> Double) {
        self.notifier = notifier
        self.configuration = configuration
        self.credentials = credentials
        self.logger = logger
        self.clock = clock
        served = ServedDocuments(monotonic: clock.monotonic)
        publisher = Publisher(directory: configuration.storage.publishDirectory)
        let devices = DeviceTable(configuration.devices)
        self.devices = devices
        records = RecordTable(devices: devices)
        scheduler = RefreshScheduler(settings: configuration.refresh, devices: devices, random: random)
        expiries = DeadlineHeap(keys: devices)
        served.configure(devices: devices)
    }

    /// Opens the cache, loads every record, plans every device and republishes every valid
    /// value. No network call and no timer yet; returns how many devices have a valid value.
    nonisolated func open() throws(DaemonError) -> Int {
        let result: Result<Int, DaemonError> = onQueueSync { refresher in
            do throws(DaemonError) {
                return .success(try refresher.openOnQueue())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Runs `body` on the queue, inside the actor, after what is already queued.
    nonisolated func onQueue(_ body: @escaping @Sendable (isolated Refresher) -> Void) {
        queue.async { self.assumeIsolated(body) }
    }

    /// Runs `body` on the queue, inside the actor, and waits for its result. Never from the queue.
    nonisolated func onQueueSync<T: Sendable>(_ body: (isolated Refresher) -> T) -> T {
        queue.sync { assumeIsolated(body) }
    }

    /// The configuration in force.
    nonisolated func currentConfiguration() -> Configuration {
        onQueueSync { $0.configuration }
    }

    private func openOnQueue() throws(DaemonError) -> Int {
        logger.info("start", ["version": BuildInfo.version, "config": configuration.file, "devices": devices.count,
                              "database": configuration.storage.database, "publish_dir": configuration.storage.publishDirectory])
        let store: AuthInfoStore
        do {
            store = try AuthInfoStore(path: configuration.storage.database)
        } catch {
            throw DaemonError(description: "\(error)")
        }
        self.store = store
        client = WeChatPayClient(configuration: clientConfiguration(store))
        hook = configuration.onChange.map { ChangeHook($0, logger: logger) }

        let wall = clock.wall(), mono = clock.monotonic()
        // The files first: worker threads write each valid value as soon as its row is read,
        // while this thread goes on reading rows and building what the socket serves.
        var republisher: Republisher?
        var present: Set<String> = []
        var removed = 0
        do {
            (present, removed) = try publisher.listFolder()
            republisher = Republisher(publisher, present: present)
        } catch {
            noteStorageFault("publish_failed", error.description, device: nil)
        }
        var plan = StartPlan(devices: configuration.devices.count, wall: wall, mono: mono, republisher: republisher)
        do {
            try store.forEachRecord { record in
                // Rows of devices no longer configured are kept (a device may come back) but not
                // planned; a configured one is planned under its id as the config spells it. Two
                // rows can read as one id (SQLite tells ids apart by their bytes, Swift by their
                // Unicode meaning, and a NUL ends a C string): the first one read wins.
                guard let position = devices.position(of: record.deviceID) else {
                    if records[record.deviceID] == nil { records[record.deviceID] = record }
                    return
                }
                guard records[configured: position] == nil else { return }
                records[configured: position] = plan.add(record, at: position, as: devices.id(at: position), delay: initialDelay(record, wall: wall))
            }
        } catch {
            _ = republisher?.finish()
            throw DaemonError(description: "\(error)")
        }
        for position in 0..<devices.count where records[configured: position] == nil {
            let record = DeviceRecord(deviceID: devices.id(at: position))
            records[configured: position] = plan.add(record, at: position, as: record.deviceID, delay: initialDelay(record, wall: wall))
        }
        plan.handOver()
        expiries = DeadlineHeap(keys: devices, slots: plan.expiries)
        scheduler.start(plan.refreshes, of: devices)
        served.load(plan.entries, of: devices)
        // What no longer belongs goes now: files of devices without a valid value. The worker
        // threads may still be writing; by the one rule `StartPlan.writesFile`, no file is both
        // written by them and deleted here.
        if republisher != nil {
            removed += publisher.removeStale(present) { id in
                devices.contains(id) && records[id].map { StartPlan.writesFile($0, AuthInfoDocument($0), at: wall) } == true
            }
        }
        if let progress = republisher?.finish() {
            if let failure = progress.failure {
                noteStorageFault("publish_failed", failure.description, device: nil)
            } else {
                logger.info("published", ["files": plan.published, "rewritten": progress.written, "removed": removed])
            }
        }
        // Loading and republishing the whole cache leaves garbage behind; return it now.
        trim()
        return plan.valid
    }

    /// Starts the refresh loop, the summary line and the watchdog keep-alives (after READY).
    nonisolated func startScheduling() {
        onQueue { refresher in
            guard !refresher.stopped else { return }
            refresher.tick()
            refresher.startSummaryTimer()
            refresher.startWatchdog()
        }
    }

    /// WATCHDOG=1 every WATCHDOG_USEC/2, from the daemon's own queue: a stuck queue stops the
    /// keep-alives and systemd restarts the service.
    private func startWatchdog() {
        guard let interval = notifier.watchdogInterval else { return }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(Int(interval * 100)))
        let notifier = notifier
        timer.setEventHandler { notifier.notify("WATCHDOG=1") }
        timer.resume()
        watchdogTimer = timer
    }

    /// Sends STATUS= with the summary line when it is at least 2 s old.
    func notifyStatusIfDue() {
        guard notifier.isActive else { return }
        let mono = clock.monotonic()
        guard mono - lastStatusNotification >= 2 else { return }
        lastStatusNotification = mono
        notifier.notify("STATUS=\(statusSummaryOnQueue().line)")
    }

    /// Seconds from now until a device loaded from the cache should be refreshed: at once
    /// without a valid value, otherwise at its persisted plan (never later than one jittered
    /// interval from now, so a clock change cannot postpone it indefinitely).
    func initialDelay(_ record: DeviceRecord, wall: Double) -> Double {
        guard record.isValid(at: wall) || record.rejected else { return 0 }
        let planned = (record.nextAttemptAt ?? wall) - wall
        return min(max(0, planned), configuration.refresh.interval * (1 + configuration.refresh.jitterFraction))
    }

    func clientConfiguration(_ store: AuthInfoStore) -> ClientConfiguration {
        var client = credentials.clientConfiguration(configuration)
        if credentials.apiV3Key != nil, let persisted = try? store.loadCertificates() {
            client.platformCertificates = persisted.pems.compactMap { try? X509Certificate(pem: $0) }
            client.platformCertificatesDownloadedAt = persisted.downloadedAt.map { Date(timeIntervalSince1970: $0) }
        }
        client.events = { [weak self] event in
            self?.onQueue { $0.handle(event) }
        }
        return client
    }

    private func handle(_ event: ClientEvent) {
        switch event {
        case .certificatesUpdated(let certificates):
            logger.info("certificates_updated", ["serials": certificates.map(\.serialNumber).joined(separator: ",")])
            do {
                try store?.saveCertificates(certificates.map { ($0.serialNumber, $0.pem) }, downloadedAt: clock.wall())
                scheduleDurableSync()
            } catch {
                logger.error("storage_error", ["error": error.description])
            }
        case .certificateDownloadFailed(let error):
            logger.warning("certificates_failed", ["code": error.code, "error": error.description])
        case .clockOffsetChanged(let offset):
            if abs(offset) > GatewayClock.warningSeconds {
                let relation = "\(Int(abs(offset))) s \(offset > 0 ? "behind" : "ahead of")"
                logger.warning("clock_offset", ["offset_seconds": Int(offset),
                                                "hint": "this host's clock is \(relation) the gateway's; past 300 s every call fails: fix time synchronisation (timedatectl, chrony or systemd-timesyncd)"])
            } else {
                logger.info("clock_offset", ["offset_seconds": Int(offset), "hint": "the clock is back within 60 s of the gateway's"])
            }
        }
    }

    /// Stops refreshing: timers cancelled, hooks stopped, the cache closed. Refreshes in flight
    /// are abandoned; every completed one is already committed. Waits at most `timeout`
    /// seconds for the queue (false when it did not answer in time). Safe to call more than once.
    @discardableResult
    nonisolated func stop(timeout: Double) -> Bool {
        let done = DispatchSemaphore(value: 0)
        onQueue { refresher in
            refresher.stopOnQueue()
            done.signal()
        }
        return done.wait(timeout: .now() + timeout) == .success
    }

    private func stopOnQueue() {
        guard !stopped else { return }
        stopped = true
        for source in [timer, summaryTimer, watchdogTimer, storageRepairTimer] { source?.cancel() }
        timer = nil
        timerDeadline = nil
        summaryTimer = nil
        watchdogTimer = nil
        storageRepairTimer = nil
        logger.info("stop", ["devices": devices.count])
        hook?.stop()
        if durableSyncPending { syncStore() }
        store = nil
    }

    // MARK: - Timers

    /// When the scheduler next wants to be asked (nil: when a refresh finishes).
    var pendingWake: Double?

    /// Set while `tick` runs; a tick asked for meanwhile (a refresh that failed before any
    /// network call finishes inside `begin`) sets `tickAgain` instead of nesting.
    private var ticking = false
    private var tickAgain = false

    /// Handles everything due now, then re-arms the timer. Never nests: asked for while running,
    /// it goes round once more instead.
    func tick() {
        guard !stopped else { return }
        guard !ticking else {
            tickAgain = true
            return
        }
        ticking = true
        defer { ticking = false }
        var starts: [String]
        repeat {
            tickAgain = false
            let mono = clock.monotonic()
            expireDue(mono)
            let taken = scheduler.take(now: mono)
            starts = taken.start
            pendingWake = taken.wake
            for id in starts { begin(id) }
        } while tickAgain && !stopped
        if starts.isEmpty && startedAt.isEmpty && refreshesSinceTrim >= 100 {
            // A wave of refreshes is over: hand the allocator's free pages back to the system,
            // so the resident size after a fill or a recovery is what the cache needs.
            refreshesSinceTrim = 0
            trim()
        }
        rearm()
    }

    /// Arms the single timer for the next deadline: `pendingWake` (a refresh, a retry, a probe,
    /// the rate limiter) or the next expiry, whichever comes first.
    func rearm() {
        guard !stopped else { return }
        let mono = clock.monotonic()
        var next = pendingWake
        if let expiry = expiries.peek()?.deadline { next = min(next ?? expiry, expiry) }
        if timer == nil {
            let source = DispatchSource.makeTimerSource(queue: queue)
            source.setEventHandler { [weak self] in self?.assumeIsolated { $0.tick() } }
            source.resume()
            timer = source
        }
        guard let next else {
            if timerDeadline != nil { timer?.schedule(deadline: .distantFuture, repeating: .never) }
            timerDeadline = nil
            return
        }
        // A deadline already set (and not yet passed) needs no new programming.
        if let set = timerDeadline, set == next, next > mono { return }
        timerDeadline = next
        timer?.schedule(deadline: .now() + max(0, next - mono), repeating: .never, leeway: .milliseconds(5))
    }

    private func expireDue(_ mono: Double) {
        while let next = expiries.peek(), next.deadline <= mono {
            _ = expiries.pop()
            guard let record = records[next.key] else { continue }
            // The lifetime is measured on the monotonic clock; a wall-clock jump changes nothing here.
            publisher.remove(next.key)
            updateServed(next.key)
            hook?.changed(device: next.key, file: publisher.path(of: next.key), state: .expired)
            logger.error("expired", ["device": next.key, "failures": record.consecutiveFailures,
                                     "last_error": record.lastError?.code,
                                     "hint": "the device cannot take payments until a refresh succeeds"])
        }
    }

    private func startSummaryTimer() {
        let source = DispatchSource.makeTimerSource(queue: queue)
        let interval = configuration.log.summaryInterval
        source.schedule(deadline: .now() + interval, repeating: interval, leeway: .seconds(1))
        source.setEventHandler { [weak self] in self?.assumeIsolated { $0.logSummaryOnQueue() } }
        source.resume()
        summaryTimer = source
    }

    /// Logs the summary line (devices by state, runway) now; what SIGUSR1 does.
    nonisolated func logSummary() {
        onQueue { $0.logSummaryOnQueue() }
    }

    func logSummaryOnQueue() {
        let report = statusSummaryOnQueue()
        if notifier.isActive {
            lastStatusNotification = clock.monotonic()
            notifier.notify("STATUS=\(report.line)")
        }
        logger.info("summary", ["devices": report.devices, "fresh": report.count(.fresh), "stale": report.count(.stale),
                                "expired": report.count(.expired), "rejected": report.count(.rejected), "pending": report.count(.pending),
                                "runway": report.runway, "storage_fault": storageFault])
    }
}
