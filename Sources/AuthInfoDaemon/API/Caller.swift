import HTTPServer
import WeChatPay

/// Who is asking: a local process on the Unix socket (trusted by the socket file's
/// permissions), or a LAN client authenticated by its bearer token.
enum Caller {
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
/// time: each comparison takes time independent of where the tokens differ, and every client
/// is compared, so timing reveals neither a token nor which client matched.
struct TokenAuthenticator {
    struct Entry {
        let client: Configuration.TCPClient
        let token: SecretBytes
    }

    let entries: [Entry]

    func authenticate(_ request: HTTPRequest) -> Caller? {
        guard let header = request.header("Authorization") else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let presented = Array(parts[1].utf8)
        var match: Configuration.TCPClient?
        for entry in entries where entry.token.constantTimeEquals(presented) {
            match = entry.client
        }
        guard let client = match else { return nil }
        return .client(name: client.name, devices: Set(client.devices), all: client.devices.contains("*"), admin: client.admin)
    }
}
