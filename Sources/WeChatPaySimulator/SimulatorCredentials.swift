import FoundationEssentials
import WeChatPay

/// The gateway-side keys of a simulator: its platform key pair and certificate, the WeChat Pay
/// public key id, and the merchant's APIv3 key. A merchant configuration points at these.
public struct SimulatorCredentials: Sendable {
    public let platformKey: RSAPrivateKey
    public let publicKeyID: String
    public let certificate: X509Certificate
    /// The APIv3 key (32 ASCII characters) that wraps certificates in `/v3/certificates`.
    public let apiV3Key: String

    /// Fresh keys (one RSA-2048 key generation, ~0.1 s).
    public static func generate() throws(CryptoError) -> SimulatorCredentials {
        try SimulatorCredentials(platformKey: RSAPrivateKey(generatingBits: 2048))
    }

    /// Keys around an existing platform key, with a new certificate serial and APIv3 key.
    public init(platformKey: RSAPrivateKey) throws(CryptoError) {
        self.platformKey = platformKey
        publicKeyID = "PUB_KEY_ID_" + (0..<32).map { _ in String(Int.random(in: 0...9)) }.joined()
        certificate = try Self.issueCertificate(for: platformKey)
        apiV3Key = SecureRandom.alphanumeric(32)
    }

    private init(platformKey: RSAPrivateKey, publicKeyID: String, certificate: X509Certificate, apiV3Key: String) {
        self.platformKey = platformKey
        self.publicKeyID = publicKeyID
        self.certificate = certificate
        self.apiV3Key = apiV3Key
    }

    /// The same keys with a newly issued platform certificate (a new serial), as after a
    /// certificate rotation at the gateway.
    public func rotatingCertificate() throws(CryptoError) -> SimulatorCredentials {
        SimulatorCredentials(platformKey: platformKey, publicKeyID: publicKeyID,
                             certificate: try Self.issueCertificate(for: platformKey), apiV3Key: apiV3Key)
    }

    /// The WeChat Pay public key as PEM, what a merchant downloads as `pub_key.pem`.
    public func publicKeyPEM() throws(CryptoError) -> String { try platformKey.publicKeyPEM() }

    private static func issueCertificate(for key: RSAPrivateKey) throws(CryptoError) -> X509Certificate {
        // 20 bytes, first nibble 1–7: a positive serial that prints as exactly 40 hex digits.
        let serial = String(Int.random(in: 1...7)) + SecureRandom.hex(20).dropFirst()
        let now = Date()
        return try X509Certificate.selfSigned(key: key, serialNumber: serial, commonName: "WeChat Pay simulator platform",
                                              notBefore: now.addingTimeInterval(-86_400), notAfter: now.addingTimeInterval(5 * 365 * 86_400))
    }
}
