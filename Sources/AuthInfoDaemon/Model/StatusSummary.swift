/// What the summary line, the log's `summary` event and systemd's STATUS say: devices counted by
/// state, and the runway. Made device by device without keeping a row for each (a full
/// `StatusReport` of 10,000 devices is megabytes, built only when someone asks for the rows).
public struct StatusSummary: Sendable, Equatable {
    public private(set) var devices = 0
    private var counts = [Int](repeating: 0, count: DeviceState.allCases.count)
    /// Seconds until the first device's authinfo expires (0 when one has no valid value); nil
    /// without devices.
    public private(set) var runway: Double?

    public init() {}

    /// Counts `status`, a row made at wall time `now`.
    public mutating func add(_ status: DeviceStatus, at now: Double) {
        add(status.state, fetchedAt: status.fetchedAt, expiresAt: status.expiresAt, at: now)
    }

    /// Counts a device in `state` whose value was fetched at `fetchedAt` and expires at
    /// `expiresAt` (wall times, nil without a value), at wall time `now`: what a row would say,
    /// for a caller that makes no row.
    mutating func add(_ state: DeviceState, fetchedAt: Double?, expiresAt: Double?, at now: Double) {
        devices += 1
        counts[Self.index(of: state)] += 1
        // A device without a value (or with no expiry) leaves no runway.
        let left = fetchedAt == nil ? 0 : max(0, (expiresAt ?? now) - now)
        runway = min(runway ?? left, left)
    }

    public func count(_ state: DeviceState) -> Int { counts[Self.index(of: state)] }

    /// The states in their order, made once (`allCases` makes a new array at every use).
    private static let states = DeviceState.allCases

    private static func index(of state: DeviceState) -> Int { states.firstIndex(of: state)! }

    /// `N devices: a fresh, b stale, …; runway 47m12s`.
    public var line: String {
        let counts = DeviceState.allCases.map { "\(count($0)) \($0.rawValue)" }.joined(separator: ", ")
        return "\(devices) devices: \(counts); runway \(runway.map(StatusReport.duration) ?? "n/a")"
    }
}
