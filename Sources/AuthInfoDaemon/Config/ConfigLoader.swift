import FoundationEssentials
import Glibc
import SystemCalls
import HTTPServer
import WeChatPay

/// Reads and validates a configuration file (README, "Configuration"): unknown keys,
/// wrong types, bad device ids, duplicates, non-positive numbers, inconsistent refresh
/// settings, insecure base URLs and unusable key files are each refused with an error naming
/// the key.
public enum ConfigLoader {
    static let maximumFileBytes = 16 << 20

    /// The config path to use: `explicit` (from `--config`), else `$AUTHINFOD_CONFIG`, else the default.
    public static func path(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        explicit ?? environment["AUTHINFOD_CONFIG"] ?? Configuration.defaultPath
    }

    /// Loads and validates `path`. Key and token files are checked (present, private, the right
    /// PEM) unless `checkingSecrets` is false (commands that only talk to the daemon or read the
    /// cache, run by users who may not read the keys); the TCP clients' tokens are then read,
    /// once, into the configuration.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            checkingSecrets: Bool = true) throws(ConfigError) -> Configuration {
        guard checkingSecrets else { return try read(path, environment: environment) }
        return try loadWithSecrets(path: path, environment: environment).configuration
    }

    /// Loads and validates `path` and every secret it names, each file read and parsed once: the
    /// merchant's keys into `MerchantCredentials`, the TCP clients' tokens into the configuration.
    /// What the daemon starts and reloads with.
    public static func loadWithSecrets(path: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ConfigError) -> (configuration: Configuration, credentials: MerchantCredentials) {
        var configuration = try read(path, environment: environment)
        let credentials = try MerchantCredentials.load(configuration.merchant, file: configuration.file)
        for (index, client) in configuration.listen.tcpClients.enumerated() {
            let key = "listen.tcp_clients[\(index)]"
            configuration.listen.tcpClients[index].token = try TCPClientToken.load(client, key: key, file: configuration.file)
            if client.tokenSource == .inline { try refuseInlineTokenInReadableFile(configuration.file, key: key + ".token") }
        }
        if let tls = configuration.listen.tls {
            configuration.listen.tls?.context = try tlsContext(tls, file: configuration.file)
        }
        return (configuration, credentials)
    }

    /// The LAN listener's TLS context: the key file must be private (like every key), and the
    /// chain and key must go together.
    static func tlsContext(_ tls: Configuration.TLS, file: String) throws(ConfigError) -> TLSServerContext {
        let key: SecretBytes
        do {
            key = SecretBytes(try SecretFile.read(tls.privateKeyFile, maximumBytes: 64 * 1024, private: true))
        } catch {
            throw ConfigError(file: file, key: "listen.tls.private_key_file", message: error.description)
        }
        let made = key.withUnsafeBytes { bytes in
            Result { () throws(TLSServerContext.SetupError) in try TLSServerContext(certificateChainFile: tls.certificateFile, privateKey: bytes) }
        }
        switch made {
        case .success(let context): return context
        case .failure(let error): throw ConfigError(file: file, key: "listen.tls", message: error.description)
        }
    }

    /// A token written into the config is a secret in that file: only its owner may read it.
    static func refuseInlineTokenInReadableFile(_ file: String, key: String) throws(ConfigError) {
        var status = stat()
        guard stat(file, &status) == 0, status.st_mode & 0o077 != 0 else { return }
        let mode = String(status.st_mode & 0o777, radix: 8)
        throw ConfigError(file: file, key: key, message: "a token is written into this config, which its group or other users can read (mode 0\(mode)): move it to a token_file (chmod 600), or chmod 600 \(file)")
    }

    private static func read(_ path: String, environment: [String: String]) throws(ConfigError) -> Configuration {
        let file = absolute(path, relativeTo: FileManager.default.currentDirectoryPath)
        let bytes: [UInt8]
        do {
            bytes = try SecretFile.read(file, maximumBytes: maximumFileBytes)
        } catch {
            throw ConfigError(file: file, key: nil, message: "cannot read the config file: \(error)")
        }
        return try parse(bytes, file: file, environment: environment)
    }

    /// Validates the configuration in `bytes` as if read from `file` (its folder anchors relative
    /// paths) without touching key or token files. Pure apart from looking up credential files
    /// in `$CREDENTIALS_DIRECTORY`: what the config fuzzer drives.
    public static func parse(_ bytes: [UInt8], file: String, environment: [String: String] = [:]) throws(ConfigError) -> Configuration {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw ConfigError(file: file, key: nil, message: "not valid JSON: \(error)")
        }
        let context = Context(file: file, directory: PathText.directory(of: file),
                              credentialsDirectory: environment["CREDENTIALS_DIRECTORY"])
        return try parse(document, context)
    }

    struct Context {
        let file: String
        let directory: String
        let credentialsDirectory: String?

        /// A path from the config: absolute as is, else relative to the config's folder.
        func path(_ value: String) -> String { ConfigLoader.absolute(value, relativeTo: directory) }

        /// A key or token file: a relative name is looked up first in `$CREDENTIALS_DIRECTORY`
        /// (systemd `LoadCredential=`), then beside the config.
        func secretPath(_ value: String) -> String {
            if !value.hasPrefix("/"), let credentialsDirectory, !credentialsDirectory.isEmpty {
                let candidate = ConfigLoader.absolute(value, relativeTo: credentialsDirectory)
                if FileManager.default.fileExists(atPath: candidate) { return candidate }
            }
            return path(value)
        }
    }

    static func parse(_ document: JSONValue, _ context: Context) throws(ConfigError) -> Configuration {
        var root = try ConfigObject(file: context.file, path: "", value: document)
        guard var merchantObject = try root.object("merchant") else { throw root.missing("merchant") }
        let merchant = try parseMerchant(&merchantObject, context)
        let api = try parseAPI(try root.object("api"), context)
        let refresh = try parseRefresh(try root.object("refresh"))
        let storage = try parseStorage(try root.object("storage"), context)
        let log = try parseLog(try root.object("log"))
        let metrics = try parseMetrics(try root.object("metrics"))
        let onChange = try parseOnChange(try root.object("on_change"), context)
        let (devices, deviceIDs) = try parseDevices(&root, context)
        let listen = try parseListen(try root.object("listen"), context, deviceIDs: deviceIDs)
        try root.rejectUnknownKeys()
        return Configuration(file: context.file, merchant: merchant, api: api, refresh: refresh, storage: storage,
                             listen: listen, log: log, metrics: metrics, onChange: onChange, devices: devices)
    }

    static func parseMerchant(_ object: inout ConfigObject, _ context: Context) throws(ConfigError) -> Configuration.Merchant {
        let mchid = try object.requiredString("mchid")
        guard mchid.utf8.count <= 32, mchid.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
            throw object.error("mchid", "must be the merchant number (digits only)")
        }
        let serial = try object.requiredString("serial_no")
        guard (8...64).contains(serial.utf8.count), serial.allSatisfy(\.isHexDigit) else {
            throw object.error("serial_no", "must be the API certificate serial number (hex digits)")
        }
        let privateKeyFile = context.secretPath(try object.requiredString("private_key_file"))
        let publicKeyID = try object.string("wechatpay_public_key_id")
        let publicKeyFile = try object.string("wechatpay_public_key_file").map(context.secretPath)
        let apiV3KeyFile = try object.string("apiv3_key_file").map(context.secretPath)
        if let publicKeyID, !publicKeyID.hasPrefix("PUB_KEY_ID_") || publicKeyID.utf8.count > 64 || !publicKeyID.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
            throw object.error("wechatpay_public_key_id", "must be the key id shown on the merchant platform (PUB_KEY_ID_…)")
        }
        if (publicKeyID == nil) != (publicKeyFile == nil) {
            throw object.error(publicKeyID == nil ? "wechatpay_public_key_id" : "wechatpay_public_key_file",
                               "is required with \(publicKeyID == nil ? "wechatpay_public_key_file" : "wechatpay_public_key_id")")
        }
        if publicKeyID == nil && apiV3KeyFile == nil {
            throw ConfigError(file: context.file, key: "merchant",
                              message: "answers cannot be verified: set wechatpay_public_key_id + wechatpay_public_key_file (public-key mode), apiv3_key_file (platform-certificate mode), or both")
        }
        try object.rejectUnknownKeys()
        return Configuration.Merchant(mchid: mchid, serialNumber: serial.uppercased(), privateKeyFile: privateKeyFile, publicKeyID: publicKeyID,
                                      publicKeyFile: publicKeyFile, apiV3KeyFile: apiV3KeyFile)
    }

    static func parseAPI(_ object: ConfigObject?, _ context: Context) throws(ConfigError) -> Configuration.API {
        var baseURL = URL(string: "https://api.mch.weixin.qq.com")!
        var backupBaseURL: URL? = URL(string: "https://api2.mch.weixin.qq.com")
        var timeout = 10.0
        guard var object else { return Configuration.API(baseURL: baseURL, backupBaseURL: backupBaseURL, timeout: timeout) }
        if let text = try object.string("base_url") {
            baseURL = try checkedURL(text, "base_url", object)
            // A custom gateway (the simulator, a proxy) gets no failover to the real backup domain
            // unless one is named: a loopback test must never leak to the internet.
            backupBaseURL = nil
        }
        if object.isNull("backup_base_url") {
            backupBaseURL = nil
        } else if let text = try object.string("backup_base_url") {
            backupBaseURL = try checkedURL(text, "backup_base_url", object)
        }
        timeout = try object.positiveNumber("timeout_seconds", default: 10)
        let caFile = try object.string("ca_file").map(context.path)
        let remoteCA = try object.bool("ca_file_allows_remote", default: false)
        if remoteCA && caFile == nil {
            throw object.error("ca_file_allows_remote", "has no effect without ca_file: remove it, or name the proxy's CA certificates in ca_file")
        }
        if let caFile {
            // Replacing the system's roots is for a local test gateway; for a remote host it is
            // only right behind a TLS-inspecting proxy, so it must be asked for by name.
            let remote = [baseURL, backupBaseURL].compactMap { $0?.host }.filter { !ClientConfiguration.isLoopback($0) }
            if let host = remote.first, !remoteCA {
                throw object.error("ca_file", "replaces the system's trusted certificates for \(host), which is not a loopback host: that is only for a TLS-inspecting proxy; set \"ca_file_allows_remote\": true to mean it, or remove ca_file")
            }
            if let problem = ClientConfiguration.problemWithTrustedCertificates(caFile) { throw object.error("ca_file", problem) }
        }
        try object.rejectUnknownKeys()
        return Configuration.API(baseURL: baseURL, backupBaseURL: backupBaseURL, timeout: timeout, trustedCertificatesFile: caFile)
    }

    static func checkedURL(_ text: String, _ name: String, _ object: ConfigObject) throws(ConfigError) -> URL {
        do {
            return try ClientConfiguration.checkBaseURL(text)
        } catch {
            throw object.error(name, error.reason)
        }
    }

    static func parseRefresh(_ object: ConfigObject?) throws(ConfigError) -> Configuration.Refresh {
        var refresh = Configuration.Refresh()
        guard var object else { return refresh }
        refresh.interval = try object.positiveNumber("interval_seconds", default: refresh.interval)
        refresh.authInfoTTL = try object.positiveNumber("authinfo_ttl_seconds", default: refresh.authInfoTTL)
        refresh.jitterFraction = try object.number("jitter_fraction", default: refresh.jitterFraction)
        refresh.backoffMinimum = try object.positiveNumber("backoff_min_seconds", default: refresh.backoffMinimum)
        refresh.backoffMaximum = try object.positiveNumber("backoff_max_seconds", default: refresh.backoffMaximum)
        refresh.maximumRequestsPerSecond = try object.positiveNumber("max_requests_per_second", default: refresh.maximumRequestsPerSecond)
        refresh.maximumConcurrentRequests = try object.positiveInteger("max_concurrent_requests", default: refresh.maximumConcurrentRequests)
        if object.value("raw_data_max_age_seconds") != nil {
            refresh.rawDataMaxAge = try object.positiveNumber("raw_data_max_age_seconds", default: 0)
        }
        try object.rejectUnknownKeys()
        guard refresh.interval < refresh.authInfoTTL else {
            throw object.error("interval_seconds", "must be below authinfo_ttl_seconds (\(ConfigObject.format(refresh.authInfoTTL))), or authinfo expires before it is refreshed")
        }
        guard (0...0.5).contains(refresh.jitterFraction) else {
            throw object.error("jitter_fraction", "must be between 0 and 0.5, not \(ConfigObject.format(refresh.jitterFraction))")
        }
        // The latest a jittered refresh can come must still be before the value expires.
        let latest = refresh.interval * (1 + refresh.jitterFraction)
        guard latest < refresh.authInfoTTL else {
            throw object.error("interval_seconds", "\(ConfigObject.format(refresh.interval)) with jitter_fraction \(ConfigObject.format(refresh.jitterFraction)) can put a refresh "
                               + "\(ConfigObject.format(latest)) s after the last, past authinfo_ttl_seconds (\(ConfigObject.format(refresh.authInfoTTL))): the value would expire first; "
                               + "keep interval_seconds × (1 + jitter_fraction) below authinfo_ttl_seconds")
        }
        guard refresh.backoffMinimum <= refresh.backoffMaximum else {
            throw object.error("backoff_min_seconds", "must not be above backoff_max_seconds (\(ConfigObject.format(refresh.backoffMaximum)))")
        }
        return refresh
    }

    static func parseStorage(_ object: ConfigObject?, _ context: Context) throws(ConfigError) -> Configuration.Storage {
        var storage = Configuration.Storage(database: "/var/lib/authinfod/authinfo.db", publishDirectory: "/run/authinfod/devices")
        guard var object else { return storage }
        if let database = try object.string("database") { storage.database = context.path(database) }
        if let publish = try object.string("publish_dir") { storage.publishDirectory = context.path(publish) }
        try object.rejectUnknownKeys()
        // The folder is the daemon's to tidy: it must not be one that holds anything else.
        let publish = PathText.canonical(storage.publishDirectory)
        let shared = [("/", "the root folder"), (context.directory, "the config's folder"),
                      (PathText.directory(of: storage.database), "the cache's folder")]
        if let (_, what) = shared.first(where: { PathText.canonical($0.0) == publish }) {
            throw ConfigError(file: context.file, key: "storage.publish_dir",
                              message: "\(storage.publishDirectory) is \(what); give the published files a folder of their own, e.g. /run/authinfod/devices")
        }
        return storage
    }

    static func parseLog(_ object: ConfigObject?) throws(ConfigError) -> Configuration.Log {
        var log = Configuration.Log(level: .info, summaryInterval: 300)
        guard var object else { return log }
        if let level = try object.string("level") {
            guard let parsed = Configuration.Log.Level(rawValue: level) else {
                throw object.error("level", "must be one of debug, info, warning, error; not \"\(level)\"")
            }
            log.level = parsed
        }
        log.summaryInterval = try object.positiveNumber("summary_interval_seconds", default: log.summaryInterval)
        try object.rejectUnknownKeys()
        return log
    }

    static func parseMetrics(_ object: ConfigObject?) throws(ConfigError) -> Configuration.MetricsOptions {
        var metrics = Configuration.MetricsOptions()
        guard var object else { return metrics }
        metrics.perDevice = try object.bool("per_device", default: metrics.perDevice)
        try object.rejectUnknownKeys()
        return metrics
    }

    static func parseOnChange(_ object: ConfigObject?, _ context: Context) throws(ConfigError) -> Configuration.OnChange? {
        guard var object else { return nil }
        guard let command = try object.stringArray("command"), let program = command.first else {
            throw object.missing("command", "is required: the program and its arguments, e.g. [\"/usr/local/bin/push-authinfo\"]")
        }
        guard program.hasPrefix("/") else { throw object.error("command[0]", "must be an absolute path to the program") }
        let timeout = try object.positiveNumber("timeout_seconds", default: 10)
        try object.rejectUnknownKeys()
        return Configuration.OnChange(command: command, timeout: timeout)
    }

    static func parseListen(_ object: ConfigObject?, _ context: Context, deviceIDs: Set<String>) throws(ConfigError) -> Configuration.Listen {
        var listen = Configuration.Listen(unixSocket: "/run/authinfod/authinfod.sock", unixSocketMode: 0o660, tcp: nil, tcpClients: [])
        guard var object else { return listen }
        if object.isNull("unix_socket") {
            listen.unixSocket = nil
        } else if let path = try object.string("unix_socket") {
            listen.unixSocket = context.path(path)
        }
        if let mode = try object.string("unix_socket_mode") {
            guard mode.utf8.count <= 4, let parsed = UInt32(mode, radix: 8), parsed <= 0o777 else {
                throw object.error("unix_socket_mode", "must be an octal mode such as \"0660\", not \"\(mode)\"")
            }
            guard parsed & 0o007 == 0 else {
                throw object.error("unix_socket_mode", "\(mode) lets every local user read authinfo; use \"0660\" and add device processes to the authinfod group")
            }
            listen.unixSocketMode = parsed
        }
        if let tcp = try object.string("tcp") { listen.tcp = try parseHostPort(tcp, object) }
        if let clients = try object.array("tcp_clients") {
            var names = Set<String>()
            for (index, element) in clients.enumerated() {
                var client = try ConfigObject(file: context.file, path: object.key("tcp_clients[\(index)]"), value: element)
                let name = try client.requiredString("name")
                guard names.insert(name).inserted else { throw client.error("name", "duplicate client name \"\(name)\"") }
                let inline = try client.string("token")
                let tokenFile = try client.string("token_file").map(context.secretPath)
                guard (inline == nil) != (tokenFile == nil) else { throw client.error("token", "set exactly one of token and token_file") }
                let devices = try client.stringArray("devices") ?? []
                for (deviceIndex, device) in devices.enumerated() where device != "*" && !deviceIDs.contains(device) {
                    throw client.error("devices[\(deviceIndex)]", "\"\(device)\" is not a configured device_id")
                }
                let admin = try client.bool("admin", default: false)
                try client.rejectUnknownKeys()
                listen.tcpClients.append(Configuration.TCPClient(name: name, tokenSource: inline != nil ? .inline : .file(tokenFile!),
                                                                 inlineToken: inline, devices: devices, admin: admin))
            }
        }
        if listen.tcp != nil && listen.tcpClients.isEmpty {
            throw object.error("tcp_clients", "listen.tcp is on but no tcp_clients are configured, so every request would be refused")
        }
        if let clients = try object.array("unix_clients") {
            for (index, element) in clients.enumerated() {
                var client = try ConfigObject(file: context.file, path: object.key("unix_clients[\(index)]"), value: element)
                listen.unixClients.append(try parseUnixClient(&client, deviceIDs: deviceIDs))
            }
        }
        if var tls = try object.object("tls") {
            let certificate = try tls.requiredString("certificate_file"), key = try tls.requiredString("private_key_file")
            try tls.rejectUnknownKeys()
            listen.tls = Configuration.TLS(certificateFile: context.secretPath(certificate), privateKeyFile: context.secretPath(key))
        }
        listen.allowPlaintext = try object.bool("allow_plaintext", default: false)
        if let tcp = listen.tcp, listen.tls == nil, !listen.allowPlaintext, !isLoopback(tcp.host) {
            throw object.error("tcp", "\(tcp.host) is reachable from the LAN, where authinfo and tokens would travel in clear: set listen.tls "
                               + "(certificate_file, private_key_file), or \"allow_plaintext\": true on a segment you trust")
        }
        listen.maxConnections = try object.positiveInteger("max_connections", default: listen.maxConnections)
        listen.maxConnectionsPerAddress = try object.positiveInteger("max_connections_per_address", default: listen.maxConnectionsPerAddress)
        try object.rejectUnknownKeys()
        return listen
    }

    /// One `unix_clients` entry: exactly one of `user` and `group` (a name, or a numeric id when
    /// no such name exists), with `devices` and `admin`.
    static func parseUnixClient(_ client: inout ConfigObject, deviceIDs: Set<String>) throws(ConfigError) -> Configuration.UnixClient {
        let user = try client.string("user"), group = try client.string("group")
        let principal: Configuration.UnixClient.Principal
        switch (user, group) {
        case (let name?, nil):
            guard let uid = LocalAccounts.uid(of: name) else { throw client.error("user", "no local user \"\(name)\" (getent passwd \(name))") }
            principal = .user(name: name, uid: uid)
        case (nil, let name?):
            guard let gid = LocalAccounts.gid(of: name) else { throw client.error("group", "no local group \"\(name)\" (getent group \(name))") }
            principal = .group(name: name, gid: gid)
        default:
            throw client.error("user", "set exactly one of user and group")
        }
        let devices = try client.stringArray("devices") ?? []
        for (index, device) in devices.enumerated() where device != "*" && !deviceIDs.contains(device) {
            throw client.error("devices[\(index)]", "\"\(device)\" is not a configured device_id")
        }
        let admin = try client.bool("admin", default: false)
        guard admin || !devices.isEmpty else {
            throw client.error("devices", "grants nothing: list the devices this peer may write (or \"*\"), or set admin: true")
        }
        try client.rejectUnknownKeys()
        return Configuration.UnixClient(principal: principal, devices: devices, admin: admin)
    }

    /// 127.0.0.0/8 and ::1 (and the IPv4-mapped loopback): only this host can connect.
    static func isLoopback(_ host: String) -> Bool {
        ClientConfiguration.isLoopbackAddress(host)
    }

    static func parseHostPort(_ text: String, _ object: ConfigObject) throws(ConfigError) -> (String, UInt16) {
        guard let colon = text.lastIndex(of: ":") else { throw object.error("tcp", "must be host:port, e.g. \"0.0.0.0:8787\"") }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
            throw object.error("tcp", "port in \"\(text)\" must be 1–65535")
        }
        var v4 = in_addr(), v6 = in6_addr()
        guard inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 else {
            throw object.error("tcp", "host in \"\(text)\" must be an IP address (e.g. 0.0.0.0 or 192.168.1.10)")
        }
        return (host, port)
    }

    /// The fields a device may take from `device_defaults` (a device's own value wins).
    struct DeviceFields {
        var spAppID: String?
        var subAppID: String?
        var subMchID: String?
        var organizationID: String?

        /// The fields `object` sets.
        init(_ object: inout ConfigObject) throws(ConfigError) {
            spAppID = try object.string("sp_appid")
            subAppID = try object.string("sub_appid")
            subMchID = try object.string("sub_mchid")
            organizationID = try object.string("organization_id")
        }

        init() {}
    }

    /// The devices, and their ids (each once). A config may list 100,000 devices: this loop
    /// builds no dictionary or path per device.
    static func parseDevices(_ root: inout ConfigObject, _ context: Context) throws(ConfigError) -> (devices: [Configuration.Device], ids: Set<String>) {
        var defaults = DeviceFields()
        if var object = try root.object("device_defaults") {
            defaults = try DeviceFields(&object)
            try object.rejectUnknownKeys()
        }
        guard let elements = try root.array("devices") else { throw root.missing("devices", "is required (a list of devices)") }
        var devices: [Configuration.Device] = []
        devices.reserveCapacity(elements.count)
        var seen = Set<String>(minimumCapacity: elements.count)
        for (index, element) in elements.enumerated() {
            var object = try ConfigObject(file: context.file, array: "devices", index: index, value: element)
            let id = try object.requiredString("device_id")
            guard DeviceID.isValid(id) else {
                throw object.error("device_id", "\"\(id)\" must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}")
            }
            guard seen.insert(id).inserted else { throw object.error("device_id", "duplicate device_id \"\(id)\"") }
            // Not a copy of the defaults to overwrite: that costs a retain and release of each
            // default string per device.
            let own = try DeviceFields(&object)
            guard let spAppID = own.spAppID ?? defaults.spAppID else { throw missingField("sp_appid", of: id, object) }
            guard let subMchID = own.subMchID ?? defaults.subMchID else { throw missingField("sub_mchid", of: id, object) }
            guard let organizationID = own.organizationID ?? defaults.organizationID else {
                throw missingField("organization_id", of: id, object)
            }
            let inline = try object.string("raw_data")
            let file = try object.string("raw_data_file")
            let rawData: Configuration.Device.RawData
            switch (inline, file) {
            case (let inline?, nil): rawData = .inline(inline)
            case (nil, let file?): rawData = .file(context.path(file))
            default: throw object.error("raw_data", "device \(id) needs exactly one of raw_data and raw_data_file")
            }
            try object.rejectUnknownKeys()
            devices.append(Configuration.Device(id: id, spAppID: spAppID, subAppID: own.subAppID ?? defaults.subAppID, subMchID: subMchID,
                                                organizationID: organizationID, rawData: rawData))
        }
        return (devices, seen)
    }

    private static func missingField(_ field: String, of id: String, _ object: ConfigObject) -> ConfigError {
        object.error(field, "is required for device \(id) (set it here or in device_defaults)")
    }

    static func absolute(_ path: String, relativeTo directory: String) -> String {
        PathText.standardized(PathText.resolve(path, from: directory))
    }
}

/// Device ids: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` (they name files and URL path segments).
public enum DeviceID {
    public static func isValid(_ id: String) -> Bool {
        let bytes = id.utf8
        guard (1...64).contains(bytes.count), let first = bytes.first, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }
}
