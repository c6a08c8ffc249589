import WeChatPay

/// The document every device reads, from a file or a socket:
/// `{"device_id":"dev-0001","authinfo":"…","fetched_at":1763800000,"expires_at":1763803600,"state":"fresh"}`.
/// `state` is sent on sockets only.
public struct AuthInfoDocument: Sendable, Equatable {
    public enum State: String, Sendable {
        case fresh, stale, expired
        case needsRawData = "needs_raw_data"
    }

    public var deviceID: String
    public var authinfo: String
    public var fetchedAt: Double
    public var expiresAt: Double

    public init(deviceID: String, authinfo: String, fetchedAt: Double, expiresAt: Double) {
        self.deviceID = deviceID
        self.authinfo = authinfo
        self.fetchedAt = fetchedAt
        self.expiresAt = expiresAt
    }

    /// The document of a record holding an authinfo, or nil.
    init?(_ record: DeviceRecord) {
        guard let authinfo = record.authinfo, let fetchedAt = record.fetchedAt, let expiresAt = record.expiresAt else { return nil }
        self.init(deviceID: record.deviceID, authinfo: authinfo, fetchedAt: fetchedAt, expiresAt: expiresAt)
    }

    /// Compact JSON in the contract's key order; times as whole Unix seconds.
    public func json(state: State? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        render(into: &bytes, state: state)
        return bytes
    }

    /// `json(state:)` in `bytes`, replacing what they held: a caller rendering many documents
    /// reuses one buffer.
    func render(into bytes: inout [UInt8], state: State? = nil) {
        bytes.removeAll(keepingCapacity: true)
        bytes.reserveCapacity(deviceID.utf8.count + authinfo.utf8.count + 128)
        bytes += #"{"device_id":"#.utf8
        JSONText.append(deviceID, to: &bytes)
        bytes += #","authinfo":"#.utf8
        JSONText.append(authinfo, to: &bytes)
        bytes += #","fetched_at":"#.utf8
        bytes += String(Int(fetchedAt.rounded(.down))).utf8
        bytes += #","expires_at":"#.utf8
        bytes += String(Int(expiresAt.rounded(.down))).utf8
        if let state {
            bytes += #","state":""#.utf8
            bytes += state.rawValue.utf8
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// The document as published in files (no `state`).
    func publishedJSON() -> [UInt8] { json() }

    /// The SHA-256 of what the published document says, taken without rendering it (a start
    /// tags 100,000 documents): the device, a NUL, the value, a NUL, and both times as the
    /// document writes them (whole seconds), 8 bytes each, little-endian. The times' fixed
    /// length at the end makes the bytes of two different documents of one device differ.
    func digest() -> [UInt8] {
        var deviceID = deviceID, authinfo = authinfo
        return deviceID.withUTF8 { id in
            authinfo.withUTF8 { value in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: id.count + value.count + 18) { buffer in
                    var bytes = StackBytes(buffer)
                    bytes.append(id)
                    bytes.append(0)
                    bytes.append(value)
                    bytes.append(0)
                    for time in [fetchedAt, expiresAt] { withUnsafeBytes(of: Int64(time.rounded(.down)).littleEndian) { bytes.append($0) } }
                    return SHA256.digest(bytes.written)
                }
            }
        }
    }
}
