import FoundationEssentials
import SystemCalls

/// An HTTP answer from the gateway: status, headers (names lower-cased) and the raw body bytes,
/// exactly as received (signatures cover these bytes, so they are never re-serialised).
public struct GatewayAnswer: Sendable {
    public let status: Int
    public let headers: [String: String]
    public let body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        self.body = body
    }

    /// An answer whose header names are lower-cased already (the reader's).
    init(status: Int, lowercasedHeaders: [String: String], body: [UInt8]) {
        self.status = status
        headers = lowercasedHeaders
        self.body = body
    }

    /// The value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    public var requestID: String? { header("Request-ID") }

    /// The answer's `Date` header, when present and parseable.
    var date: Date? {
        guard let value = header("Date") else { return nil }
        return HTTPDateText.parse(value).map { Date(timeIntervalSince1970: Double($0)) }
    }
}
