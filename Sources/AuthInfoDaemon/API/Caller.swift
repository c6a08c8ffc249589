import Glibc
import HTTPServer
import SystemCalls
import Synchronization
import WeChatPay

/// Who is asking, and what they may do: a LAN client authenticated by its bearer token, or a
/// local process on the Unix socket known by its peer credentials.
struct Caller: Sendable {
    /// For logs (`by=`): the TCP client's name, or `unix uid=N`.
    let name: String
    let isAdmin: Bool
    private let devices: Set<String>
    private let allDevices: Bool
    /// Reads every device's authinfo without writing any (a local peer without a grant).
    private let readsAll: Bool

    private init(name: String, isAdmin: Bool, devices: Set<String>, allDevices: Bool, readsAll: Bool) {
        self.name = name
        self.isAdmin = isAdmin
        self.devices = devices
        self.allDevices = allDevices
        self.readsAll = readsAll
    }

    /// A caller granted `devices` (`"*"` for all) and admin or not.
    static func granted(_ name: String, devices: some Sequence<String>, admin: Bool) -> Caller {
        let devices = Set(devices)
        return Caller(name: name, isAdmin: admin, devices: devices, allDevices: devices.contains("*"), readsAll: false)
    }

    /// A local peer with no grant: it may read any device's authinfo and nothing else.
    static func reader(_ name: String) -> Caller {
        Caller(name: name, isAdmin: false, devices: [], allDevices: false, readsAll: true)
    }

    /// Whether the caller may read `device`'s authinfo. Checked before the device's existence,
    /// so a client never learns which devices outside its scope exist.
    func mayRead(_ device: String) -> Bool {
        readsAll || mayWrite(device)
    }

    /// Whether the caller may write `device` (raw_data, the exchange).
    func mayWrite(_ device: String) -> Bool {
        isAdmin || allDevices || devices.contains(device)
    }
}

/// Roles on the Unix socket, from the peer's credentials: root and the daemon's own user are
/// admin; `listen.unix_clients` grants users and groups devices and admin (grants add up);
/// every other peer may only read authinfo.
struct UnixRoles: Sendable {
    private let grants: [Configuration.UnixClient]
    private let serviceUID: UInt32

    init(_ grants: [Configuration.UnixClient], serviceUID: UInt32 = geteuid()) {
        self.grants = grants
        self.serviceUID = serviceUID
    }

    func caller(for credentials: PeerCredentials?) -> Caller {
        guard let credentials else { return .reader("unix") }
        let name = "unix uid=\(credentials.uid)"
        if credentials.uid == 0 || credentials.uid == serviceUID { return .granted(name, devices: [], admin: true) }
        let matching = grants.filter { grant in
            switch grant.principal {
            case .user(_, let uid): credentials.uid == uid
            case .group(_, let gid): credentials.isMember(of: gid)
            }
        }
        guard !matching.isEmpty else { return .reader(name) }
        return .granted(name, devices: matching.flatMap(\.devices), admin: matching.contains(where: \.admin))
    }
}

/// Matches `Authorization: Bearer <token>` against every configured TCP client in constant
/// time: tokens are compared as SHA-256 digests (always 32 bytes, so not even a token's length
/// shows), each comparison takes the same time wherever they differ, and every client is
/// compared, so timing reveals neither a token nor which client matched.
struct TokenAuthenticator: Sendable {
    /// Each client's token digest and the caller it authenticates (built once, not per request).
    private let callers: [(digest: SecretBytes, caller: Caller)]

    /// The table of `clients` that carry a token (all of them, once the configuration was
    /// loaded with its secrets).
    init(clients: [Configuration.TCPClient]) {
        callers = clients.compactMap { client in
            client.token.map { (SecretBytes($0.withUnsafeBytes { SHA256.digest($0) }), .granted(client.name, devices: client.devices, admin: client.admin)) }
        }
    }

    func authenticate(_ request: HTTPRequest) -> Caller? {
        guard let header = request.header("Authorization"), let digest = Self.bearerTokenDigest(header) else { return nil }
        var match: Caller?
        for entry in callers where entry.digest.constantTimeEquals(digest) {
            match = entry.caller
        }
        return match
    }

    /// The SHA-256 digest of the token of `Bearer <token>` (scheme in any case, one or more
    /// spaces), or nil. Read in place: the token is not copied.
    static func bearerTokenDigest(_ header: String) -> [UInt8]? {
        var header = header
        return header.withUTF8 { bytes -> [UInt8]? in
            let scheme: StaticString = "bearer"
            guard bytes.count > 7, bytes[6] == 0x20, (0..<6).allSatisfy({ asciiLowercased(bytes[$0]) == scheme.utf8Start[$0] }) else { return nil }
            guard let start = bytes[7...].firstIndex(where: { $0 != 0x20 }) else { return nil }
            return SHA256.digest(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[start...])))
        }
    }

    private static func asciiLowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}

/// The TCP clients and Unix roles in service: read by every request, replaced whole by a reload
/// (open connections keep working; a token rotated out fails from its next request, a grant
/// taken back applies from the next request).
final class ClientTable: Sendable {
    private let table = Mutex((tcp: TokenAuthenticator(clients: []), unix: UnixRoles([])))

    func authenticate(_ request: HTTPRequest) -> Caller? {
        table.withLock { $0.tcp.authenticate(request) }
    }

    func unixCaller(_ request: HTTPRequest) -> Caller {
        table.withLock { $0.unix.caller(for: request.credentials) }
    }

    func replace(tcp: TokenAuthenticator, unix: UnixRoles) {
        table.withLock { $0 = (tcp, unix) }
    }
}
