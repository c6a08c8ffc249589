import Dispatch
import FoundationEssentials
import Synchronization
import WeChatPay

/// The documents `GET /v1/devices/{id}/authinfo` answers with, readable from the listeners'
/// threads without a hop onto the refresher's queue (the hot path of the socket API), and the
/// long-polls waiting for them to change.
///
/// `Mutex` rather than queue confinement because readers are the listener threads and the only
/// writer is the refresher's queue; each access is one lookup of the device's place and an
/// array slot. A waiting
/// request is a closure in a list, not a thread: its answer is sent when the value changes or
/// its wait ends (checked four times a second by one timer, which runs only while someone waits).
final class ServedDocuments: Sendable {
    /// Deadlines are monotonic: a wall-clock jump never turns a valid value "expired". A class,
    /// immutable: a read takes a reference, not a copy of every field.
    final class Entry: Sendable {
        let expiresAt: Double
        /// When the refresh becomes overdue.
        let dueAt: Double
        let failing: Bool
        /// The device's raw_data was refused: the value is served, and says so.
        let needsRawData: Bool
        /// A weak validator of the value (not of `state`, which moves with time): changes exactly
        /// when what the published document says changes (a new authinfo, or its times).
        let etag: String
        /// The value. Its JSON is rendered per read rather than kept: the document's strings are
        /// the record's own (shared, not copied), so a served value costs a few words, not a
        /// second copy of every document.
        let document: AuthInfoDocument
        /// The answer's header fields other than the ETag, in wire form: the same for every value.
        static let fields = Array("Content-Type: application/json\r\nCache-Control: no-store\r\n".utf8)

        init(document: AuthInfoDocument, expiresAt: Double, dueAt: Double, failing: Bool, needsRawData: Bool = false) {
            self.document = document
            self.expiresAt = expiresAt
            self.dueAt = dueAt
            self.failing = failing
            self.needsRawData = needsRawData
            // What the published document says (the value, when it was fetched and when it
            // expires): its digest changes with them, and is the same after a restart.
            etag = Self.weakTag(document.digest())
        }

        /// `W/"…"` holding 64 bits of `digest` in 11 base64url characters: 15 bytes, which a
        /// Swift string keeps inline, so a value's tag costs no allocation of its own.
        static func weakTag(_ digest: [UInt8]) -> String {
            let bits = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            var tag = Array(#"W/""#.utf8)
            for index in 0..<11 {
                // 10 characters of 6 bits, then the last 4 bits (shifted up, as base64 does).
                let shift = 58 - 6 * index
                tag.append(base64URL[Int(shift >= 0 ? (bits >> UInt64(shift)) & 63 : (bits << 2) & 63)])
            }
            tag.append(UInt8(ascii: "\""))
            return String(decoding: tag, as: UTF8.self)
        }

        private static let base64URL = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

        func state(at now: Double) -> AuthInfoDocument.State {
            .of(expiresAt: expiresAt, needsRawData: needsRawData, failing: failing, dueAt: dueAt, now: now)
        }

        /// The body at monotonic time `now`.
        func body(at now: Double) -> [UInt8] {
            document.json(state: state(at: now))
        }
    }

    /// How a wait ended.
    enum WaitOutcome: Sendable {
        /// The served value is another than the one the client has (nil: none is served).
        case changed(Entry?)
        /// The wait ran out with the client's value still current.
        case unchanged
        /// The device is no longer configured.
        case gone
    }

    private struct Waiter {
        let etag: String?
        let deadline: Double
        let reply: @Sendable (WaitOutcome) -> Void
    }

    private struct State {
        var devices = DeviceTable([])
        /// By the device's position in `devices` (a word a device; a dictionary took three).
        var entries: [Entry?] = []
        var waiters: [String: [Waiter]] = [:]
        var waiting = 0
        var timer: DispatchSourceTimer?

        mutating func takeWaiters(_ id: String) -> [Waiter] {
            let taken = waiters.removeValue(forKey: id) ?? []
            waiting -= taken.count
            return taken
        }
    }

    /// Seconds a long-poll may wait at most.
    static let maximumWait = 300.0
    private static let sweepInterval = 0.25

    private let state = Mutex(State())
    private let now: @Sendable () -> Double
    private let sweeps = DispatchQueue(label: "authinfod.long-polls")

    /// Served documents whose deadlines are on `monotonic`, the refresher's clock.
    init(monotonic: @escaping @Sendable () -> Double) {
        now = monotonic
    }

    /// Monotonic seconds on the clock the deadlines are on.
    func monotonicNow() -> Double { now() }

    /// The configured devices (unknown ones get 404): the refresher's own table, shared rather
    /// than copied into a set of ids. A device still configured keeps its value; the values of
    /// the others go, and their waits end.
    func configure(devices: DeviceTable) {
        let ended = state.withLock { state -> [Waiter] in
            var entries = [Entry?](repeating: nil, count: devices.count)
            for (position, entry) in state.entries.enumerated() {
                guard let entry, let kept = devices.position(of: state.devices.id(at: position)) else { continue }
                entries[kept] = entry
            }
            state.devices = devices
            state.entries = entries
            let removed = state.waiters.keys.filter { !devices.contains($0) }
            return removed.flatMap { state.takeWaiters($0) }
        }
        for waiter in ended { waiter.reply(.gone) }
    }

    /// Serves `entry` for configured device `id` (nil: no value); a new value ends the waits
    /// for it. A device not configured (`configure`) has nothing served.
    func set(_ id: String, _ entry: Entry?) {
        let woken = state.withLock { state -> [Waiter] in
            guard let position = state.devices.position(of: id) else { return [] }
            let previous = state.entries[position]
            state.entries[position] = entry
            guard previous?.etag != entry?.etag, state.waiters[id] != nil else { return [] }
            return state.takeWaiters(id)
        }
        for waiter in woken { waiter.reply(.changed(entry)) }
    }

    /// Serves every entry of `entries` at once (one lock): the values loaded from the cache at
    /// start, before anyone can wait for them. Each is by its device's position in `devices`,
    /// which must be the table `configure` gave.
    func load(_ entries: [(slot: Int, entry: Entry)], of devices: DeviceTable) {
        state.withLock { state in
            precondition(devices.isSame(as: state.devices), "ServedDocuments.load: entries by position in another table")
            for (slot, entry) in entries { state.entries[slot] = entry }
        }
    }

    /// nil: unknown device; `.some(nil)`: configured but no value yet.
    func lookup(_ id: String) -> Entry?? {
        state.withLock { state in
            // One hash on the hot path: the position says both.
            guard let position = state.devices.position(of: id) else { return nil }
            return .some(state.entries[position])
        }
    }

    /// Calls `reply` exactly once: at once when `id`'s served value is not the one tagged `etag`
    /// (nil: none), otherwise when it changes or after `seconds`.
    func wait(for id: String, unless etag: String?, seconds: Double, reply: @escaping @Sendable (WaitOutcome) -> Void) {
        let deadline = now() + min(seconds, Self.maximumWait)
        let immediate = state.withLock { state -> WaitOutcome? in
            guard let position = state.devices.position(of: id) else { return .gone }
            let current = state.entries[position]
            guard current?.etag == etag else { return .changed(current) }
            state.waiters[id, default: []].append(Waiter(etag: etag, deadline: deadline, reply: reply))
            state.waiting += 1
            if state.timer == nil { state.timer = startSweeping() }
            return nil
        }
        if let immediate { reply(immediate) }
    }

    /// Long-polls waiting now (metrics and tests).
    var waitingCount: Int { state.withLock { $0.waiting } }

    private func startSweeping() -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: sweeps)
        timer.schedule(deadline: .now() + Self.sweepInterval, repeating: Self.sweepInterval, leeway: .milliseconds(50))
        timer.setEventHandler { [weak self] in self?.sweep() }
        timer.resume()
        return timer
    }

    /// Ends the waits whose time is up; stops the timer when nobody waits.
    private func sweep() {
        let now = now()
        let expired = state.withLock { state -> [Waiter] in
            var expired: [Waiter] = []
            for (id, waiters) in state.waiters {
                guard waiters.contains(where: { $0.deadline <= now }) else { continue }
                expired += waiters.filter { $0.deadline <= now }
                let remaining = waiters.filter { $0.deadline > now }
                state.waiters[id] = remaining.isEmpty ? nil : remaining
            }
            state.waiting -= expired.count
            if state.waiting == 0 {
                state.timer?.cancel()
                state.timer = nil
            }
            return expired
        }
        for waiter in expired { waiter.reply(.unchanged) }
    }
}
