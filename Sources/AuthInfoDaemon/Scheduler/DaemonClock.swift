import FoundationEssentials
import SystemCalls

/// Where the daemon gets time: the wall clock for what is persisted and shown (authinfo expiry is
/// wall time), and a monotonic clock for deadlines, so a wall-clock jump never makes every
/// device due at once. Injectable so scheduling is tested without sleeping.
public struct DaemonClock: Sendable {
    /// Unix seconds.
    public var wall: @Sendable () -> Double
    /// Seconds on a clock that never jumps (CLOCK_MONOTONIC).
    public var monotonic: @Sendable () -> Double

    public init(wall: @escaping @Sendable () -> Double, monotonic: @escaping @Sendable () -> Double) {
        self.wall = wall
        self.monotonic = monotonic
    }

    public static let system = DaemonClock(
        wall: { Date().timeIntervalSince1970 },
        monotonic: { MonotonicClock.now() })
}
