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

    /// Compact JSON in the contract's key order; times as whole Unix seconds. Built byte by
    /// byte: it is on the path of every socket read.
    public func json(state: State? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(deviceID.utf8.count + authinfo.utf8.count + 100)
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
        return bytes
    }
}

/// JSON string escaping for documents written by hand (fast, and exact about what is emitted).
enum JSONText {
    /// Appends `text` as a JSON string. Text with nothing to escape (an authinfo, a device id)
    /// is copied as is.
    static func append(_ text: String, to bytes: inout [UInt8]) {
        let plain = text.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C && $0 != 0x7F && $0 != 0xE2 }
        if plain {
            bytes.append(UInt8(ascii: "\""))
            bytes += text.utf8
            bytes.append(UInt8(ascii: "\""))
        } else {
            bytes += quote(text).utf8
        }
    }

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
