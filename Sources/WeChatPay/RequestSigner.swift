import FoundationEssentials

/// Signs APIv3 requests as the merchant: the `Authorization` header over
/// `METHOD\nPATH_AND_QUERY\nTIMESTAMP\nNONCE\nBODY\n` with SHA256withRSA.
public struct RequestSigner: Sendable {
    public static let scheme = "WECHATPAY2-SHA256-RSA2048"

    public let mchid: String
    /// The merchant API certificate's serial number.
    public let serialNumber: String
    let privateKey: RSAPrivateKey

    public init(mchid: String, serialNumber: String, privateKey: RSAPrivateKey) {
        self.mchid = mchid
        self.serialNumber = serialNumber
        self.privateKey = privateKey
    }

    /// The exact bytes that are signed. `pathAndQuery` is the path as sent, with its query,
    /// without scheme or host; `body` is empty for GET.
    public static func message(method: String, pathAndQuery: String, timestamp: Int, nonce: String, body: [UInt8]) -> [UInt8] {
        var message = Array("\(method.uppercased())\n\(pathAndQuery)\n\(timestamp)\n\(nonce)\n".utf8)
        message += body
        message.append(UInt8(ascii: "\n"))
        return message
    }

    /// The `Authorization` header value for one request. `timestamp` is Unix seconds; `nonce`
    /// must be fresh (32 characters of `[0-9A-Za-z]`, see `SecureRandom.alphanumeric`).
    public func authorization(method: String, pathAndQuery: String, timestamp: Int, nonce: String, body: [UInt8]) throws(CryptoError) -> String {
        let message = Self.message(method: method, pathAndQuery: pathAndQuery, timestamp: timestamp, nonce: nonce, body: body)
        let signature = Data(try privateKey.sign(message)).base64EncodedString()
        return "\(Self.scheme) mchid=\"\(mchid)\",nonce_str=\"\(nonce)\",signature=\"\(signature)\",timestamp=\"\(timestamp)\",serial_no=\"\(serialNumber)\""
    }
}
