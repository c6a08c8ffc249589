import FoundationEssentials
import WeChatPay

/// What the cache holds for one device. Times are Unix seconds (wall clock).
///
/// Stored compactly (a daemon holds one per device): times as `CompactTime`s and digests as
/// `CompactDigest`s, since an optional takes a word more in a struct, and the failure count as
/// 32 bits beside the two flags, which come last so they pack together (Swift lays a struct out
/// in declaration order).
public struct DeviceRecord: Sendable, Equatable {
    public var deviceID: String
    public var authinfo: String?
    /// raw_data pushed by the device over the socket API; preferred over the config's.
    public var pushedRawData: String?
    /// The raw_data in force (pushed, inline or the file's); since when: `rawDataSince`.
    @CompactDigest public var rawDataDigest: RawDataDigest?
    /// The raw_data the current authinfo was fetched with.
    @CompactDigest public var fetchedWithRawData: RawDataDigest?
    /// The last failure, kept behind a reference: most devices have none, and the record of
    /// every device stays small.
    public var lastError: RecordedError? {
        get { lastErrorBox?.error }
        set { lastErrorBox = newValue.map(RecordedErrorBox.init) }
    }
    private var lastErrorBox: RecordedErrorBox?

    @CompactTime public var fetchedAt: Double?
    @CompactTime public var expiresAt: Double?
    /// When the next refresh is planned (for `status` read from the cache).
    @CompactTime public var nextAttemptAt: Double?
    /// When the daemon first saw the raw_data in force (wall time).
    @CompactTime public var rawDataSince: Double?
    public var consecutiveFailures: Int {
        get { Int(failuresStorage) }
        set { failuresStorage = Int32(clamping: newValue) }
    }
    private var failuresStorage: Int32 = 0

    /// The gateway refused the device with a non-retryable error.
    public var rejected = false
    /// The gateway refused `rawDataDigest` (or it grew older than `raw_data_max_age_seconds`):
    /// no gateway call for the device until new raw_data arrives.
    public var needsRawData = false

    public init(deviceID: String) {
        self.deviceID = deviceID
    }

    /// Whether the device holds an authinfo that has not expired at `now`.
    public func isValid(at now: Double) -> Bool {
        guard authinfo != nil, let expiresAt else { return false }
        return now < expiresAt
    }
}

/// An optional time in 8 bytes instead of 16: `-infinity` stands for none. No time the daemon
/// keeps is `-infinity`: the cache reads none outside ±10^11 s (`AuthInfoStore.time`).
@propertyWrapper
public struct CompactTime: Sendable, Equatable {
    private var stored = -Double.infinity

    public init(wrappedValue: Double?) {
        self.wrappedValue = wrappedValue
    }

    public var wrappedValue: Double? {
        get { stored == -.infinity ? nil : stored }
        set { stored = newValue ?? -.infinity }
    }
}

/// The last failure of a device's refresh, as shown in `status`.
public struct RecordedError: Sendable, Equatable {
    public var code: String
    public var message: String
    public var httpStatus: Int?
    public var requestID: String?
    public var at: Double

    public init(code: String, message: String, httpStatus: Int?, requestID: String?, at: Double) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.requestID = requestID
        self.at = at
    }
}

/// Holds a `RecordedError` out of line; compared by value.
private final class RecordedErrorBox: Sendable, Equatable {
    let error: RecordedError

    init(_ error: RecordedError) {
        self.error = error
    }

    static func == (a: RecordedErrorBox, b: RecordedErrorBox) -> Bool { a.error == b.error }
}
