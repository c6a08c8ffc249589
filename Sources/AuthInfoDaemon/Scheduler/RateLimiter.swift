/// Admits request starts so that no sliding window of one second ever holds more than
/// `requestsPerSecond` of them. Fractional rates below one become one start per `1/rate`
/// seconds; fractional rates above one are rounded down (never over the limit). The window is
/// 5% longer than the rate implies: starts spaced exactly one window apart could otherwise
/// arrive at the gateway less than a second apart through network and scheduling jitter (seen
/// in the fault tests: 6 arrivals in one second at 5/s).
struct RateLimiter {
    let capacity: Int
    let window: Double
    private var starts: [Double] = []
    private var head = 0

    init(requestsPerSecond: Double) {
        capacity = max(1, Int(requestsPerSecond.rounded(.down)))
        window = max(1, Double(capacity) / requestsPerSecond) * 1.05
        starts.reserveCapacity(capacity * 2)
    }

    /// The earliest time at or after `now` when a start is admitted.
    mutating func nextAllowed(at now: Double) -> Double {
        prune(now)
        let live = starts.count - head
        guard live >= capacity else { return now }
        // The oldest live start must leave the window (strictly) before another may begin.
        return starts[head] + window
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
