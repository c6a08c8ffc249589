import FoundationEssentials

/// The signature headers of a gateway answer, and the checks that make the answer trustworthy.
///
/// The signed message is `TIMESTAMP\nNONCE\nBODY\n` over the raw body bytes.
public struct AnswerSignature: Sendable {
    public static let signTestPrefix = "WECHATPAY/SIGNTEST/"
    /// Largest accepted distance between `Wechatpay-Timestamp` and the local clock.
    public static let maximumSkew: TimeInterval = 300

    public let timestamp: Int
    public let nonce: String
    public let signature: String
    /// `Wechatpay-Serial`: a `PUB_KEY_ID_…` or a platform certificate serial.
    public let serial: String

    /// Reads the signature headers of `answer`; refuses absent or malformed ones, test
    /// signatures, foreign algorithms and (unless `checkingFreshness` is false) timestamps more
    /// than 300 s from `now`.
    public init(answer: GatewayAnswer, now: Date, checkingFreshness: Bool = true) throws(SignatureFailure) {
        let names = ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
        let values = names.map { answer.header($0) ?? "" }
        let missing = zip(names, values).filter { $0.1.isEmpty }.map(\.0)
        guard missing.isEmpty else { throw .missingHeaders(missing) }
        if let type = answer.header("Wechatpay-Signature-Type"), type != RequestSigner.scheme {
            throw .unsupportedType(type)
        }
        guard !values[2].hasPrefix(Self.signTestPrefix) else { throw .signTest }
        guard let timestamp = Int(values[0]) else { throw .staleTimestamp(skewSeconds: Int.max) }
        let skew = abs(now.timeIntervalSince1970 - TimeInterval(timestamp))
        guard skew <= Self.maximumSkew || !checkingFreshness else { throw .staleTimestamp(skewSeconds: Int(skew.rounded())) }
        self.timestamp = timestamp
        nonce = values[1]
        signature = values[2]
        serial = values[3]
    }

    /// The exact bytes the gateway signed.
    public static func message(timestamp: String, nonce: String, body: [UInt8]) -> [UInt8] {
        var message = Array("\(timestamp)\n\(nonce)\n".utf8)
        message += body
        message.append(UInt8(ascii: "\n"))
        return message
    }

    /// Checks the signature over `body` with `key`; throws `.invalid` when it does not verify.
    public func verify(body: [UInt8], with key: RSAPublicKey) throws(SignatureFailure) {
        guard let decoded = Data(base64Encoded: signature) else { throw .invalid }
        let message = Self.message(timestamp: String(timestamp), nonce: nonce, body: body)
        guard key.isValidSignature(Array(decoded), for: message) else { throw .invalid }
    }
}
