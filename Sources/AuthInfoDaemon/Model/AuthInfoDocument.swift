/// The document every device reads, from a file or a socket:
/// `{"device_id":"dev-0001","authinfo":"…","fetched_at":1763800000,"expires_at":1763803600,"state":"fresh"}`.
/// `state` is sent on sockets only.
public struct AuthInfoDocument: Sendable, Equatable {
    public enum State: String, Sendable {
        case fresh, stale, expired
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
        var text = "{\"device_id\":\(JSONText.quote(deviceID)),\"authinfo\":\(JSONText.quote(authinfo)),"
        text += "\"fetched_at\":\(Int(fetchedAt.rounded(.down))),\"expires_at\":\(Int(expiresAt.rounded(.down)))"
        if let state { text += ",\"state\":\"\(state.rawValue)\"" }
        text += "}"
        return Array(text.utf8)
    }
}

/// JSON string escaping for documents written by hand (fast, and exact about what is emitted).
enum JSONText {
    static func quote(_ text: String) -> String {
        var result = "\""
        result.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}":
                result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
