import Synchronization
import SystemCalls

/// Lets a warning about a client address through at most once every `interval` seconds per
/// address, so a scan or a flood cannot flood the log (the counters still count everything).
final class AddressLogGate: Sendable {
    let interval: Double
    /// When each address was last let through (monotonic).
    private let logged = Mutex<[String: Double]>([:])

    init(interval: Double = 10) {
        self.interval = interval
    }

    /// Whether a line about `address` may be logged now (and if so, starts its quiet time).
    func admits(_ address: String, now: Double = MonotonicClock.now()) -> Bool {
        logged.withLock { logged in
            if let last = logged[address], now - last < interval { return false }
            if logged.count >= 10_000 { logged = logged.filter { now - $0.value < interval } }
            logged[address] = now
            return true
        }
    }

    /// The address without its port: one client opening many connections is one address.
    static func address(of peer: String) -> String {
        if peer.hasPrefix("["), let end = peer.firstIndex(of: "]") { return String(peer[...end]) }
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        return String(peer[..<colon])
    }
}
