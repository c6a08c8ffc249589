/// How a refresh ended, as far as scheduling is concerned.
enum RefreshOutcome: Equatable {
    /// A verified authinfo living `lifetime` seconds.
    case success(lifetime: Double)
    /// The gateway could not be used (network, timeout, 429, 5xx): an outage, not the device's fault.
    case gatewayUnavailable
    /// The gateway answered, but not usably for this device (malformed or unverifiable answer):
    /// retry this device with backoff.
    case deviceRetryable
    /// Nothing was sent (the device's raw_data could not be read): retry with backoff, and say
    /// nothing about the gateway.
    case localFailure
    /// The gateway refused the device (a non-retryable 4xx).
    case rejected
    /// Nothing was sent: the device's raw_data was refused and no new one has come. Its raw_data
    /// is looked at again after `interval` or `backoff_max_seconds`, whichever is sooner (a
    /// `raw_data_file` may have changed); the gateway is not involved.
    case waitingForRawData
}

/// When each device is refreshed: the pure policy, on monotonic seconds, with no I/O.
///
/// - After a success: `interval × (1 ± jitter)`, shortened in proportion when the gateway gives
///   a lifetime below `authinfo_ttl_seconds`.
/// - Device-level failures back off exponentially per device; rejected devices wait `interval`.
/// - Gateway-level failures start an outage: from then on one probe per backoff period, not
///   one request per device; the first answer ends it and every due device is refreshed.
/// - No sliding second holds more than `max_requests_per_second` starts, and no more than
///   `max_concurrent_requests` are in flight.
///
/// Not thread-safe: owned by the daemon's queue.
final class RefreshScheduler {
    /// An outage: consecutive failed probes and when the next probe may start.
    struct Outage: Equatable {
        var failures: Int
        var nextProbeAt: Double
    }

    /// The `refresh` section in force (a reload replaces it through `update`).
    private(set) var settings: Configuration.Refresh
    private var backoff: Backoff { Backoff(minimum: settings.backoffMinimum, maximum: settings.backoffMaximum) }
    private var due: DeadlineHeap
    private var limiter: RateLimiter
    private(set) var inFlight = Set<String>()
    private(set) var failures: [String: Int] = [:]
    private(set) var outage: Outage?
    private var probe: String?
    private let random: () -> Double

    /// A scheduler of the devices of `devices`; `random` returns values in 0..<1 (injectable for
    /// tests).
    init(settings: Configuration.Refresh, devices: DeviceTable, random: @escaping () -> Double = { Double.random(in: 0..<1) }) {
        self.settings = settings
        due = DeadlineHeap(keys: devices)
        self.random = random
        limiter = RateLimiter(requestsPerSecond: settings.maximumRequestsPerSecond)
    }

    /// New settings (config reload); deadlines already planned, refreshes in flight and the
    /// starts the rate limiter has admitted are kept.
    func update(_ settings: Configuration.Refresh) {
        self.settings = settings
        limiter.setRate(settings.maximumRequestsPerSecond)
    }

    /// The plan of every device at start, before anything was scheduled or started: each
    /// device's deadline and its consecutive failures so far. Its next attempt is then its
    /// deadline (nothing is in flight, no outage is known). Devices are by position in
    /// `devices`, the scheduler's own table.
    func start(_ plans: [(slot: Int, deadline: Double, failures: Int)], of devices: DeviceTable) {
        precondition(due.count == 0 && inFlight.isEmpty, "RefreshScheduler.start: only before anything is scheduled")
        precondition(devices.isSame(as: due.keys), "RefreshScheduler.start: plans by position in another table")
        due = DeadlineHeap(keys: devices, slots: plans.map { (slot: $0.slot, deadline: $0.deadline) })
        for plan in plans where plan.failures > 0 { failures[devices.id(at: plan.slot)] = plan.failures }
    }

    /// Plans `id` at `deadline` (replacing any earlier plan), with `failures` consecutive failures so far.
    func schedule(_ id: String, at deadline: Double, failures count: Int? = nil) {
        // Only failing devices are counted: a healthy one costs no entry.
        if let count { failures[id] = count > 0 ? count : nil }
        if !inFlight.contains(id) { due.set(id, deadline) }
    }

    /// Schedules the devices of `devices` from now on (a reload): each device still configured
    /// keeps its plan and failure count; the others lose theirs. A refresh of a removed device
    /// still in flight keeps its place until it ends (`abandon`): the call is still out.
    func reconfigure(_ devices: DeviceTable) {
        due.rekey(devices)
        failures = failures.filter { devices.contains($0.key) }
    }

    /// Forgets `id`'s plan and failure count.
    func remove(_ id: String) {
        due.remove(id)
        failures[id] = nil
    }

    /// `id`'s refresh ended with nothing to plan by: its device was removed while the call was
    /// out, or the call could not start. Its place among the concurrent requests, and the
    /// probe's during an outage, is free again; nothing is planned for it.
    func abandon(_ id: String) {
        inFlight.remove(id)
        if probe == id { probe = nil }
    }

    /// When `id` will next be tried (now if in flight or overdue; the next probe during an outage).
    func nextAttempt(of id: String, now: Double) -> Double? {
        if inFlight.contains(id) { return now }
        return planned(due.deadline(of: id), now: now)
    }

    /// `nextAttempt(of:now:)` of the device at `slot` in `devices`, the scheduler's own table (a
    /// pass over every device, without hashing each id while nothing is in flight).
    func nextAttempt(atSlot slot: Int, of devices: DeviceTable, now: Double) -> Double? {
        assert(devices.isSame(as: due.keys), "RefreshScheduler.nextAttempt: a position in another table")
        if !inFlight.isEmpty, inFlight.contains(devices.id(at: slot)) { return now }
        return planned(due.deadline(atSlot: slot), now: now)
    }

    /// When a planned `deadline` comes, an outage's next probe holding it back.
    private func planned(_ deadline: Double?, now: Double) -> Double? {
        guard let deadline else { return nil }
        if let outage, deadline <= max(now, outage.nextProbeAt) { return max(outage.nextProbeAt, deadline) }
        return deadline
    }

    /// Devices to start now (recorded as started), and when to ask again (nil: when a refresh finishes).
    func take(now: Double) -> (start: [String], wake: Double?) {
        var starts: [String] = []
        while inFlight.count < settings.maximumConcurrentRequests {
            guard let top = due.peek() else { return (starts, nil) }
            if top.deadline > now { return (starts, top.deadline) }
            if let outage {
                if probe != nil { return (starts, nil) }
                if now < outage.nextProbeAt { return (starts, outage.nextProbeAt) }
            }
            let allowed = limiter.nextAllowed(at: now)
            if allowed > now { return (starts, allowed) }
            _ = due.pop()
            limiter.record(now)
            inFlight.insert(top.key)
            starts.append(top.key)
            if outage != nil {
                probe = top.key
                return (starts, nil)
            }
        }
        return (starts, nil)
    }

    /// Records how `id`'s refresh ended; returns its next deadline.
    @discardableResult
    func finish(_ id: String, _ outcome: RefreshOutcome, now: Double) -> Double {
        inFlight.remove(id)
        let wasProbe = probe == id
        if wasProbe { probe = nil }
        let next: Double
        switch outcome {
        case .success(let lifetime):
            failures[id] = nil
            outage = nil
            let jittered = settings.interval * (1 + settings.jitterFraction * (2 * random() - 1))
            next = now + jittered * min(1, lifetime / settings.authInfoTTL)
        case .gatewayUnavailable:
            failures[id, default: 0] += 1
            if var current = outage {
                if wasProbe {
                    current.failures += 1
                    current.nextProbeAt = now + backoff.delay(failures: current.failures, random: random())
                    outage = current
                }
            } else {
                outage = Outage(failures: 1, nextProbeAt: now + backoff.delay(failures: 1, random: random()))
            }
            next = now
        case .deviceRetryable, .localFailure:
            failures[id, default: 0] += 1
            if outcome == .deviceRetryable { outage = nil }
            next = now + backoff.delay(failures: failures[id]!, random: random())
        case .rejected:
            failures[id, default: 0] += 1
            outage = nil
            next = now + settings.interval
        case .waitingForRawData:
            next = now + min(settings.interval, settings.backoffMaximum)
        }
        due.set(id, next)
        return next
    }
}
