/// Exponential backoff with jitter: the n-th consecutive failure waits about
/// `minimum × 2^(n-1)`, capped at `maximum`, drawn uniformly from the upper half of that span
/// ("equal jitter") so retries of many devices spread out; never below `minimum`.
struct Backoff: Sendable {
    let minimum: Double
    let maximum: Double

    func delay(failures: Int, random: Double) -> Double {
        let base = min(maximum, minimum * Double(1 << min(max(failures - 1, 0), 30)))
        return min(maximum, max(minimum, base / 2 + base / 2 * random))
    }
}
