#if canImport(Glibc)
import Glibc
#endif

/// The one reader of CLOCK_MONOTONIC: seconds since boot that never jump with the wall clock.
public enum MonotonicClock {
    public static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// The same clock read cheaply, at the kernel tick's resolution (a few milliseconds): for
    /// timeouts and idle times on every request's path, where a vDSO clock read per call showed
    /// in profiles.
    public static func coarse() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Whole microseconds (systemd's `MONOTONIC_USEC=`).
    public static func microseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1_000
    }
}
