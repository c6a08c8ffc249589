import FoundationEssentials
import HTTPServer
import WeChatPay

/// The daemon's validated configuration (README, "Configuration"). Paths are absolute,
/// defaults are filled in, and every constraint has been checked; secrets are not loaded here
/// (see `MerchantCredentials`, `TCPClientToken`).
public struct Configuration: Sendable {
    public static let defaultPath = "/etc/authinfod/authinfod.json"

    /// The config file this was read from (absolute).
    public var file: String
    public var merchant: Merchant
    public var api: API
    public var refresh: Refresh
    public var storage: Storage
    public var listen: Listen
    public var log: Log
    public var metrics = MetricsOptions()
    public var onChange: OnChange?
    public var devices: [Device]

    public struct Merchant: Sendable {
        public var mchid: String
        public var serialNumber: String
        public var privateKeyFile: String
        public var publicKeyID: String?
        public var publicKeyFile: String?
        public var apiV3KeyFile: String?

        /// "public key", "platform certificates" or "public key + platform certificates (migration)".
        public var verificationMode: String {
            switch (publicKeyID != nil, apiV3KeyFile != nil) {
            case (true, true): "public key + platform certificates (migration)"
            case (true, false): "WeChat Pay public key"
            default: "platform certificates"
            }
        }
    }

    public struct API: Sendable {
        public var baseURL: URL
        public var backupBaseURL: URL?
        public var timeout: Double
        /// `ca_file`: PEM certificates trusted for the gateway's TLS instead of the system's.
        public var trustedCertificatesFile: String? = nil
    }

    public struct Refresh: Sendable, Equatable {
        public var interval: Double = 2400
        public var authInfoTTL: Double = 3600
        public var jitterFraction: Double = 0.1
        public var backoffMinimum: Double = 1
        public var backoffMaximum: Double = 300
        public var maximumRequestsPerSecond: Double = 10
        public var maximumConcurrentRequests: Int = 4
        /// raw_data older than this (since the daemon first saw it) is not sent: the device
        /// needs new raw_data. nil: no limit.
        public var rawDataMaxAge: Double?

        public init() {}
    }

    public struct Storage: Sendable {
        public var database: String
        public var publishDirectory: String
    }

    public struct Listen: Sendable {
        public var unixSocket: String?
        public var unixSocketMode: UInt32
        /// `host:port` for devices on the LAN; nil when off.
        public var tcp: (host: String, port: UInt16)?
        public var tcpClients: [TCPClient]
        /// Local users and groups granted more than reading authinfo on the Unix socket.
        public var unixClients: [UnixClient] = []
        /// Open LAN connections at most, in total and from one address (an IPv6 /64).
        public var maxConnections = 4096
        public var maxConnectionsPerAddress = 64
        /// TLS on the LAN listener; nil: plain HTTP (loopback, or `allowPlaintext`).
        public var tls: TLS?
        /// A non-loopback `tcp` without `tls` is refused unless this is set.
        public var allowPlaintext = false
    }

    /// The LAN listener's certificate chain and key (PEM files).
    public struct TLS: Sendable {
        public var certificateFile: String
        public var privateKeyFile: String
        /// The context built from both, once, by `ConfigLoader.loadWithSecrets` (nil when
        /// secrets were not checked).
        public internal(set) var context: TLSServerContext?
    }

    /// A grant on the Unix socket to a local user or group (resolved to its id when the config
    /// is read). Root and the daemon's own user are admin without one; every other peer may
    /// only read authinfo.
    public struct UnixClient: Sendable, Equatable {
        public enum Principal: Sendable, Equatable {
            case user(name: String, uid: UInt32)
            case group(name: String, gid: UInt32)
        }

        public var principal: Principal
        /// Device ids the peer may read and write (raw_data); `["*"]` for all.
        public var devices: [String]
        public var admin: Bool
    }

    public struct TCPClient: Sendable {
        public enum TokenSource: Sendable, Equatable {
            case inline
            case file(String)
        }

        public var name: String
        /// Where the token comes from; the token itself is in `token` only when inline.
        public var tokenSource: TokenSource
        var inlineToken: String?
        /// Device ids this client may read and write; `["*"]` for all.
        public var devices: [String]
        public var admin: Bool
        /// The token, read once by `ConfigLoader.load` (nil when secrets were not checked).
        public internal(set) var token: SecretBytes?
    }

    public struct Log: Sendable {
        public enum Level: String, Sendable, CaseIterable {
            case debug, info, warning, error
        }

        public var level: Level
        public var summaryInterval: Double
    }

    /// What `GET /metrics` exports beyond the site-wide figures.
    public struct MetricsOptions: Sendable, Equatable {
        /// `authinfod_device_expires_at_seconds{device}`, one series per device with a value, so
        /// that an alert can name the device; off for very large sites (a series per device).
        public var perDevice = true
    }

    public struct OnChange: Sendable, Equatable {
        public var command: [String]
        public var timeout: Double
    }

    public struct Device: Sendable, Equatable {
        public enum RawData: Sendable, Equatable {
            case inline(String)
            case file(String)
        }

        public var id: String
        public var spAppID: String
        public var subAppID: String?
        public var subMchID: String
        public var organizationID: String
        public var rawData: RawData
    }
}
