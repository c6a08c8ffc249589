import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The WeChat Pay public key (public-key verification mode): its id (`PUB_KEY_ID_…`) and key.
public struct WeChatPayPublicKey: Sendable {
    public let id: String
    public let key: RSAPublicKey

    public init(id: String, key: RSAPublicKey) {
        self.id = id
        self.key = key
    }
}

/// What the client reports besides call results, for the daemon to log and persist.
public enum ClientEvent: Sendable {
    /// A fresh platform-certificate set was downloaded and verified; persist it for offline restarts.
    case certificatesUpdated([X509Certificate])
    /// Downloading platform certificates failed; the current set stays in use.
    case certificateDownloadFailed(WeChatPayError)
    /// The gateway's clock moved past `GatewayClock.warningSeconds` from this host's, or back
    /// within it (seconds; positive: the gateway is ahead).
    case clockOffsetChanged(seconds: Double)
}

/// Everything a `WeChatPayClient` needs: merchant credentials, verification keys, endpoints.
///
/// Verification: `publicKey` (public-key mode), `apiV3Key` (platform-certificate mode), or both
/// (migration: each answer's `Wechatpay-Serial` picks the key). At least one is required.
public struct ClientConfiguration: Sendable {
    public var signer: RequestSigner
    public var publicKey: WeChatPayPublicKey?
    public var apiV3Key: SecretBytes?
    /// Platform certificates persisted from an earlier download, used until a new set arrives.
    public var platformCertificates: [X509Certificate] = []
    /// When `platformCertificates` were downloaded; nil makes a refresh due at the first call.
    public var platformCertificatesDownloadedAt: Date?
    public var baseURL: URL
    public var backupBaseURL: URL?
    /// Per-request timeout in seconds (connect to last byte).
    public var timeout: TimeInterval = 10
    /// A PEM bundle that replaces the system's trusted roots for https (nil: the system's, which
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR` may point elsewhere).
    public var trustedCertificatesFile: String?
    /// Seconds an idle kept-alive connection is reused for; older ones are closed instead (servers
    /// drop idle connections too).
    public var keepAliveSeconds: TimeInterval = 20
    /// Fewest seconds between two certificate downloads.
    public var certificateAttemptInterval: TimeInterval = 60
    /// The wall clock, for timestamps and answer skew checks; injectable for tests.
    public var clock: @Sendable () -> Date = { Date() }
    public var events: (@Sendable (ClientEvent) -> Void)?

    public init(signer: RequestSigner, publicKey: WeChatPayPublicKey?, apiV3Key: SecretBytes?, baseURL: URL, backupBaseURL: URL? = nil) {
        precondition(publicKey != nil || apiV3Key != nil, "a WeChat Pay public key or an APIv3 key is required to verify answers")
        self.signer = signer
        self.publicKey = publicKey
        self.apiV3Key = apiV3Key
        self.baseURL = baseURL
        self.backupBaseURL = backupBaseURL
    }

    /// Checks a gateway base URL: https, or plain http to a loopback host only (the simulator).
    /// Returns the URL, or throws a sentence saying what is wrong with it.
    public static func checkBaseURL(_ text: String) throws(InvalidBaseURL) -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw InvalidBaseURL(reason: "\"\(text)\" is not an absolute URL")
        }
        guard url.query == nil, url.fragment == nil, url.user == nil else {
            throw InvalidBaseURL(reason: "\"\(text)\" must be scheme, host and optional port and path only")
        }
        switch scheme {
        case "https": return url
        case "http" where isLoopback(host): return url
        case "http": throw InvalidBaseURL(reason: "\"\(text)\" uses plain http; only https is allowed (http only to loopback hosts, for the simulator)")
        default: throw InvalidBaseURL(reason: "\"\(text)\" must be an https URL")
        }
    }

    /// Why `path` cannot serve as `trustedCertificatesFile` (unreadable, or no PEM certificate
    /// libssl accepts), or nil when it can.
    public static func problemWithTrustedCertificates(_ path: String) -> String? {
        guard FileManager.default.isReadableFile(atPath: path) else { return "\(path) is missing or not readable" }
        do {
            _ = try TLSClientContext(trustedCertificatesFile: path)
            return nil
        } catch {
            return "\(path) holds no PEM certificate libssl accepts (\(error))"
        }
    }

    /// Whether `host` is a loopback name or address: `localhost`, or an address in 127.0.0.0/8,
    /// `::1` or the IPv4-mapped loopback (brackets allowed). Addresses are read with
    /// `inet_pton`, the way the resolver reads them: `127.0.0.09` is not an address but a name
    /// the resolver would ask DNS for, so it is not loopback.
    public static func isLoopback(_ host: String) -> Bool {
        var bare = host
        if bare.hasPrefix("[") && bare.hasSuffix("]") { bare = String(bare.dropFirst().dropLast()) }
        return bare.lowercased() == "localhost" || isLoopbackAddress(bare)
    }

    /// Whether `address` is a numeric loopback address (127.0.0.0/8, `::1`, `::ffff:127.x.x.x`).
    public static func isLoopbackAddress(_ address: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        return bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
    }
}

/// A gateway base URL that is refused, with the reason.
public struct InvalidBaseURL: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
