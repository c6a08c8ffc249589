import SystemCalls

/// One parsed HTTP/1.x request.
public struct HTTPRequest: Sendable {
    public let method: String
    /// The request target as sent (origin form: path and optional query).
    public let target: String
    /// `target` without its query.
    public let path: String
    /// The query after `?`, if any.
    public let query: String?
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public let minorVersion: Int
    /// Header fields in arrival order, names as sent.
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]
    /// Who sent it: `address:port` of a TCP client, `unix` on a Unix socket (set by the server).
    public internal(set) var peer = ""
    /// On a Unix socket: who connected, as the kernel saw it (set by the server).
    public internal(set) var credentials: PeerCredentials?

    public init(method: String, target: String, minorVersion: Int = 1, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = body
        let mark = target.utf8.withContiguousStorageIfAvailable { $0.firstIndex(of: UInt8(ascii: "?")) } ?? target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target.utf8.distance(from: target.utf8.startIndex, to: $0) }
        if let mark {
            let bytes = Array(target.utf8)
            path = String(decoding: bytes[..<mark], as: UTF8.self)
            query = String(decoding: bytes[(mark + 1)...], as: UTF8.self)
        } else {
            path = target
            query = nil
        }
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// Whether the client wants the connection kept open after this request.
    public var keepAlive: Bool {
        let connection = header("Connection")
        if minorVersion == 0 { return connection?.caseInsensitiveEquals("keep-alive") == true }
        return connection?.caseInsensitiveEquals("close") != true
    }
}

extension String {
    /// ASCII case-insensitive equality (header names and tokens), byte by byte.
    func caseInsensitiveEquals(_ other: String) -> Bool {
        let mine = utf8, theirs = other.utf8
        guard mine.count == theirs.count else { return false }
        // Native strings compare in place; others (bridged, never on the request path) by view.
        if let equal = mine.withContiguousStorageIfAvailable({ a in
            theirs.withContiguousStorageIfAvailable { b in
                for index in 0..<a.count where asciiLower(a[index]) != asciiLower(b[index]) { return false }
                return true
            }
        }), let equal { return equal }
        for (a, b) in zip(mine, theirs) where asciiLower(a) != asciiLower(b) { return false }
        return true
    }
}

@inline(__always) func asciiLower(_ byte: UInt8) -> UInt8 {
    (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
}
