import HTTPServer
import Synchronization
import WeChatPay

/// Who is asking: a local process on the Unix socket (trusted by the socket file's
/// permissions), or a LAN client authenticated by its bearer token.
enum Caller: Sendable {
    case local
    case client(name: String, devices: Set<String>, all: Bool, admin: Bool)

    var isAdmin: Bool {
        switch self {
        case .local: true
        case .client(_, _, _, let admin): admin
        }
    }

    /// Whether the caller may read and write `device`. Checked before the device's existence,
    /// so a client never learns which devices outside its scope exist.
    func mayAccess(_ device: String) -> Bool {
        switch self {
        case .local: true
        case .client(_, let devices, let all, let admin): admin || all || devices.contains(device)
        }
    }

    var name: String {
        switch self {
        case .local: "unix-socket"
        case .client(let name, _, _, _): name
        }
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
            client.token.map { (SecretBytes($0.withUnsafeBytes { SHA256.digest($0) }), .client(name: client.name, devices: Set(client.devices), all: client.devices.contains("*"), admin: client.admin)) }
        }
    }

    func authenticate(_ request: HTTPRequest) -> Caller? {
        guard let header = request.header("Authorization"), let presented = Self.bearerToken(header) else { return nil }
        let digest = SHA256.digest(presented)
        var match: Caller?
        for entry in callers where entry.digest.constantTimeEquals(digest) {
            match = entry.caller
        }
        return match
    }

    /// The token of `Bearer <token>` (scheme in any case, one or more spaces), or nil.
    static func bearerToken(_ header: String) -> [UInt8]? {
        let bytes = Array(header.utf8)
        guard bytes.count > 7, bytes[6] == 0x20,
              zip(bytes[0..<6], "bearer".utf8).allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }) else { return nil }
        guard let start = bytes[7...].firstIndex(where: { $0 != 0x20 }) else { return nil }
        return Array(bytes[start...])
    }
}

/// The TCP clients in service: read by every LAN request, replaced whole by a reload (open
/// connections keep working; a token rotated out fails from its next request).
final class ClientTable: Sendable {
    private let authenticator = Mutex(TokenAuthenticator(clients: []))

    func authenticate(_ request: HTTPRequest) -> Caller? {
        authenticator.withLock { $0.authenticate(request) }
    }

    func replace(with new: TokenAuthenticator) {
        authenticator.withLock { $0 = new }
    }
}
