import FoundationEssentials
import SystemCalls
import WeChatPay

/// A device's state as operators see it.
public enum DeviceState: String, Sendable, CaseIterable {
    /// Valid, refresh not yet due.
    case fresh
    /// Valid, refresh overdue (retrying; still served).
    case stale
    /// The last value has expired; the device cannot take payments until a refresh succeeds.
    case expired
    /// The gateway refused the device (non-retryable error); see the last error.
    case rejected
    /// The gateway refused the device's raw_data (or it is older than allowed): no call until new
    /// raw_data arrives; a valid value is still served.
    case needsRawData = "needs_raw_data"
    /// No value yet.
    case pending
}

extension DeviceState {
    /// The state rule, and the only place it is written: status, the socket's documents, metrics,
    /// the summary and the hook all derive a device's state here. Times are on one clock (wall
    /// or monotonic, as long as all three agree):
    ///
    /// - `needs_raw_data` when the device's raw_data was refused, whatever value it still has;
    /// - `rejected` when the gateway refused the device, whatever value it still has;
    /// - `pending` without a value, `expired` once the value's `expiresAt` has passed;
    /// - `stale` while valid but its refresh is overdue: the last attempt failed, or `dueAt` is
    ///   more than a second past;
    /// - otherwise `fresh`.
    public static func of(expiresAt: Double?, rejected: Bool, needsRawData: Bool = false, failing: Bool, dueAt: Double?, now: Double) -> DeviceState {
        if needsRawData { return .needsRawData }
        if rejected { return .rejected }
        guard let expiresAt else { return .pending }
        if now >= expiresAt { return .expired }
        if failing || dueAt.map({ now >= $0 + 1 }) == true { return .stale }
        return .fresh
    }
}

extension AuthInfoDocument.State {
    /// What a served document says of a device holding a value: the rule above, where a
    /// rejected device still serving its value is stale (its refresh keeps failing), and one
    /// waiting for raw_data says so while its value is valid.
    static func of(expiresAt: Double, needsRawData: Bool = false, failing: Bool, dueAt: Double?, now: Double) -> Self {
        if needsRawData && now < expiresAt { return .needsRawData }
        return switch DeviceState.of(expiresAt: expiresAt, rejected: false, failing: failing, dueAt: dueAt, now: now) {
        case .expired, .pending: .expired
        case .stale, .rejected, .needsRawData: .stale
        case .fresh: .fresh
        }
    }
}

/// One device's row in `status`.
public struct DeviceStatus: Sendable {
    public var deviceID: String
    public var state: DeviceState
    public var fetchedAt: Double?
    public var expiresAt: Double?
    public var nextAttemptAt: Double?
    public var consecutiveFailures: Int
    public var lastError: RecordedError?

    /// The row of `record` at wall time `now`, with `nextAttemptAt` (wall) as planned; its
    /// state by `DeviceState.of`.
    public init(_ record: DeviceRecord, nextAttemptAt: Double?, now: Double) {
        deviceID = record.deviceID
        fetchedAt = record.fetchedAt
        expiresAt = record.expiresAt
        self.nextAttemptAt = nextAttemptAt
        consecutiveFailures = record.consecutiveFailures
        lastError = record.lastError
        state = Self.state(of: Facts(record), expiresAt: record.expiresAt, nextAttemptAt: nextAttemptAt, now: now)
    }

    /// What a device's state is decided from, of its record: flags and times, none of its strings.
    struct Facts {
        let hasValue: Bool
        let fetchedAt: Double?
        let expiresAt: Double?
        let rejected: Bool
        let needsRawData: Bool
        let failing: Bool

        init(_ record: borrowing DeviceRecord) {
            hasValue = record.authinfo != nil
            fetchedAt = record.fetchedAt
            expiresAt = record.expiresAt
            rejected = record.rejected
            needsRawData = record.needsRawData
            failing = record.consecutiveFailures > 0
        }
    }

    /// The state of the row `init(_:nextAttemptAt:now:)` makes of a record with `facts`, and
    /// `expiresAt` in place of its own expiry, without making the row.
    static func state(of facts: Facts, expiresAt: Double?, nextAttemptAt: Double?, now: Double) -> DeviceState {
        .of(expiresAt: facts.hasValue ? expiresAt ?? now : nil, rejected: facts.rejected, needsRawData: facts.needsRawData,
            failing: facts.failing, dueAt: nextAttemptAt, now: now)
    }
}

/// What `authinfod status` shows: every device, a summary, and the runway (how long the site
/// survives a WAN outage from now: time until the first device's authinfo expires).
public struct StatusReport: Sendable {
    public var generatedAt: Double
    /// "daemon" when the running daemon answered, "cache" when read from the database.
    public var source: String
    public var devices: [DeviceStatus]
    /// Extra facts for operators (e.g. a storage fault, or why the cache was read).
    public var notes: [String] = []
    /// Seconds the gateway's clock is ahead of this host's (negative: behind), from verified
    /// answers; nil before any (or when read from the cache).
    public var clockOffsetSeconds: Double?

    public init(generatedAt: Double, source: String, devices: [DeviceStatus]) {
        self.generatedAt = generatedAt
        self.source = source
        self.devices = devices
    }

    /// The counts by state and the runway of these rows.
    public var summary: StatusSummary {
        devices.reduce(into: StatusSummary()) { $0.add($1, at: generatedAt) }
    }

    public func count(_ state: DeviceState) -> Int { summary.count(state) }

    /// Seconds until the first configured device's authinfo expires (0 if any has none valid).
    public var runway: Double? { summary.runway }

    /// `N devices: a fresh, b stale, …; runway 47m12s`.
    public var summaryLine: String { summary.line }

    /// The `status --json` document.
    public func json() -> [UInt8] {
        func number(_ value: Double?) -> String { value.map { String(Int($0.rounded(.down))) } ?? "null" }
        var text = "{\"generated_at\":\(number(generatedAt)),\"source\":\"\(source)\",\"summary\":{\"devices\":\(devices.count)"
        for state in DeviceState.allCases { text += ",\"\(state.rawValue)\":\(count(state))" }
        text += "},\"runway_seconds\":\(number(runway)),\"clock_offset_seconds\":\(clockOffsetSeconds.map { String(Int($0)) } ?? "null")"
        text += ",\"notes\":[\(notes.map(JSONText.quote).joined(separator: ","))],\"devices\":["
        text += devices.map { device in
            var row = "{\"device_id\":\(JSONText.quote(device.deviceID)),\"state\":\"\(device.state.rawValue)\""
            row += ",\"fetched_at\":\(number(device.fetchedAt)),\"expires_at\":\(number(device.expiresAt))"
            row += ",\"age_seconds\":\(number(device.fetchedAt.map { generatedAt - $0 }))"
            row += ",\"expires_in_seconds\":\(number(device.expiresAt.map { $0 - generatedAt }))"
            row += ",\"next_refresh_in_seconds\":\(number(device.nextAttemptAt.map { max(0, $0 - generatedAt) }))"
            row += ",\"consecutive_failures\":\(device.consecutiveFailures),\"last_error\":"
            if let error = device.lastError {
                row += "{\"code\":\(JSONText.quote(error.code)),\"message\":\(JSONText.quote(error.message)),\"http_status\":\(error.httpStatus.map(String.init) ?? "null"),"
                row += "\"request_id\":\(error.requestID.map(JSONText.quote) ?? "null"),\"at\":\(number(error.at))}"
            } else {
                row += "null"
            }
            return row + "}"
        }.joined(separator: ",")
        return Array((text + "]}").utf8)
    }

    /// The human table.
    public func table() -> String {
        var rows = [["DEVICE", "STATE", "AGE", "EXPIRES IN", "NEXT REFRESH", "FAILURES", "LAST ERROR"]]
        for device in devices {
            rows.append([
                device.deviceID, device.state.rawValue,
                device.fetchedAt.map { Self.duration(generatedAt - $0) } ?? "-",
                device.expiresAt.map { $0 > generatedAt ? Self.duration($0 - generatedAt) : "expired" } ?? "-",
                device.nextAttemptAt.map { $0 > generatedAt ? Self.duration($0 - generatedAt) : "now" } ?? "-",
                String(device.consecutiveFailures),
                device.lastError.map { "\($0.code): \($0.message)".prefix(90).description } ?? "-",
            ])
        }
        let widths = (0..<rows[0].count - 1).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var lines = rows.map { row in
            row.enumerated().map { index, cell in index < widths.count ? cell + String(repeating: " ", count: max(0, widths[index] - cell.count)) : cell }
                .joined(separator: "  ")
        }
        lines.append(summaryLine + (source == "daemon" ? " (from the running daemon)" : " (from the cache)"))
        if let offset = clockOffsetSeconds {
            let relation = offset == 0 ? "in step with" : "\(Int(abs(offset))) s \(offset > 0 ? "ahead of" : "behind")"
            lines.append("gateway clock: \(relation) this host's" + (abs(offset) > 60 ? " (more than 60 s: check time synchronisation)" : ""))
        }
        lines += notes
        return lines.joined(separator: "\n")
    }

    /// `1h02m`, `47m12s`, `9s`.
    public static func duration(_ seconds: Double) -> String {
        let total = Int(max(0, seconds).rounded())
        if total >= 3600 { return CFormat.string("%ldh%02ldm", total / 3600, (total % 3600) / 60) }
        if total >= 60 { return CFormat.string("%ldm%02lds", total / 60, total % 60) }
        return "\(total)s"
    }
}
