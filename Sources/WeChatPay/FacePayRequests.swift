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
