/// The body of `POST /v3/offlineface/authinfo`.
public struct AuthInfoRequest: Sendable, Codable, Equatable {
    public var spAppID: String
    public var subAppID: String?
    public var subMchID: String
    public var deviceID: String
    public var rawData: String
    public var organizationID: String

    public init(spAppID: String, subAppID: String?, subMchID: String, deviceID: String, rawData: String, organizationID: String) {
        self.spAppID = spAppID
        self.subAppID = subAppID
        self.subMchID = subMchID
        self.deviceID = deviceID
        self.rawData = rawData
        self.organizationID = organizationID
    }

    enum CodingKeys: String, CodingKey {
        case spAppID = "sp_appid", subAppID = "sub_appid", subMchID = "sub_mchid", deviceID = "device_id"
        case rawData = "raw_data", organizationID = "organization_id"
    }

    /// The request body: compact JSON, keys sorted (what `JSONEncoder` with `.sortedKeys` makes,
    /// without its cost on every refresh).
    public func jsonBody() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(rawData.utf8.count + deviceID.utf8.count + 160)
        func field(_ name: String, _ value: String) {
            bytes.append(bytes.isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
            JSONText.append(name, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            JSONText.append(value, to: &bytes)
        }
        field("device_id", deviceID)
        field("organization_id", organizationID)
        field("raw_data", rawData)
        field("sp_appid", spAppID)
        if let subAppID { field("sub_appid", subAppID) }
        field("sub_mchid", subMchID)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}

/// A fresh authinfo from the gateway. `expiresIn` is the lifetime in seconds, when the answer gave one.
public struct AuthInfo: Sendable, Equatable {
    public let value: String
    public let expiresIn: Int?

    public init(value: String, expiresIn: Int?) {
        self.value = value
        self.expiresIn = expiresIn
    }
}

/// The body of `POST /v3/offlinefacemch/tokens` (scene WEBSESSION).
public struct TokenRequest: Sendable, Codable, Equatable {
    public struct WebInitData: Sendable, Codable, Equatable {
        public var outUserID: String
        public var organizationID: String

        enum CodingKeys: String, CodingKey {
            case outUserID = "out_user_id", organizationID = "organization_id"
        }
    }

    public var scene: String
    public var webInitData: WebInitData

    public init(outUserID: String, organizationID: String) {
        scene = "WEBSESSION"
        webInitData = WebInitData(outUserID: outUserID, organizationID: organizationID)
    }

    enum CodingKeys: String, CodingKey {
        case scene, webInitData = "web_init_data"
    }
}
