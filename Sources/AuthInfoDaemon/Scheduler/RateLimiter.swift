/// Admits request starts so that no sliding window of one second ever holds more than
/// `requestsPerSecond` of them. Fractional rates below one become one start per `1/rate`
/// seconds; fractional rates above one are rounded down (never over the limit). The window is
/// 10% longer than the rate implies: a start is admitted before its request is signed and sent,
/// so starts spaced exactly one window apart could arrive at the gateway less than a second
/// apart through signing, scheduling and network jitter. The fault tests, counting arrivals at
/// the simulator on a busy 2-core VM, saw 6 in one second at 5/s with no margin, and once 21 at
/// 20/s with 5% (50 ms); 10% absorbs 100 ms.
struct RateLimiter {
    private(set) var capacity: Int
    private(set) var window: Double
    private var starts: [Double] = []
    private var head = 0

    init(requestsPerSecond: Double) {
        (capacity, window) = Self.shape(requestsPerSecond)
        starts.reserveCapacity(capacity * 2)
    }

    /// A new rate (config reload). The starts already admitted keep counting: a reload in the
    /// middle of a fill cannot put more than the new rate into any sliding second.
    mutating func setRate(_ requestsPerSecond: Double) {
        (capacity, window) = Self.shape(requestsPerSecond)
    }

    private static func shape(_ requestsPerSecond: Double) -> (capacity: Int, window: Double) {
        let capacity = max(1, Int(requestsPerSecond.rounded(.down)))
        return (capacity, max(1, Double(capacity) / requestsPerSecond) * 1.10)
    }

    /// The earliest time at or after `now` when a start is admitted.
    mutating func nextAllowed(at now: Double) -> Double {
        prune(now)
        let live = starts.count - head
        guard live >= capacity else { return now }
        // Enough starts must leave the window (strictly) that fewer than `capacity` remain
        // (more than `capacity` are live only after the rate was lowered).
        return starts[starts.count - capacity] + window
    }

    mutating func record(_ time: Double) {
        prune(time)
        starts.append(time)
    }

    private mutating func prune(_ now: Double) {
        while head < starts.count, starts[head] + window <= now { head += 1 }
        if head > 64 && head * 2 > starts.count {
            starts.removeFirst(head)
            head = 0
        }
    }
}
