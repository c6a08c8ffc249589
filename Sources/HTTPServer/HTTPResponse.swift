#if canImport(Glibc)
import Glibc
#endif
import SystemCalls

/// An HTTP response to send: status, headers and a complete body (`Content-Length` is added).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// More header fields, already in wire form (`Name: value` and CRLF each), sent after
    /// `headers`: for an answer made once and served many times. The maker guarantees the form
    /// (no CR or LF inside a field) and leaves `Date`, `Content-Length` and `Connection` out.
    public var preformattedFields: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
        preformattedFields = []
    }

    /// A response whose header fields were formatted beforehand (see `preformattedFields`), and
    /// maybe a few made now (`headers`, sent first).
    public init(status: Int, headers: [(name: String, value: String)] = [], preformattedFields: [UInt8], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
        self.preformattedFields = preformattedFields
    }

    /// A response whose body is `text` as UTF-8, with the given content type.
    public init(status: Int, contentType: String, text: String, headers: [(name: String, value: String)] = []) {
        self.init(status: status, headers: [("Content-Type", contentType)] + headers, body: Array(text.utf8))
    }

    /// A JSON response `{"error":"<code>"}`, the shape every error answer of authinfod has.
    public static func error(_ status: Int, _ code: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", text: "{\"error\":\"\(code)\"}")
    }

    /// Appends the bytes on the wire to `bytes`, with a `Date` field (`date`, an HTTP-date)
    /// unless the response carries one; `close` adds `Connection: close`. Written straight into
    /// the connection's output (this is on every request's path).
    func write(into bytes: inout [UInt8], close: Bool, date: [UInt8]) {
        // Only into an empty buffer: reserving exactly what one more answer needs would defeat the
        // array's doubling while a client leaves answers unread (a copy of them all per answer).
        if bytes.isEmpty { bytes.reserveCapacity(160 + preformattedFields.count + body.count) }
        bytes += Self.statusLine(status)
        for (name, value) in headers {
            bytes += name.utf8
            bytes += [0x3A, 0x20]
            bytes += value.utf8
            bytes += [13, 10]
        }
        bytes += preformattedFields
        if !headers.contains(where: { $0.name.caseInsensitiveEquals("Date") }) {
            bytes += "Date: ".utf8
            bytes += date
            bytes += [13, 10]
        }
        bytes += "Content-Length: ".utf8
        bytes += String(body.count).utf8
        bytes += [13, 10]
        if close { bytes += "Connection: close\r\n".utf8 }
        bytes += [13, 10]
        bytes += body
    }

    /// `HTTP/1.1 200 OK` and CRLF; the common ones made once.
    private static func statusLine(_ status: Int) -> [UInt8] {
        switch status {
        case 200: ok
        case 304: notModified
        default: Array("HTTP/1.1 \(status) \(reason(status))\r\n".utf8)
        }
    }

    private static let ok = Array("HTTP/1.1 200 OK\r\n".utf8)
    private static let notModified = Array("HTTP/1.1 304 Not Modified\r\n".utf8)

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 202: "Accepted"
        case 204: "No Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}

/// The `Date` field's value for the current second (RFC 9110 IMF-fixdate), made once a second.
struct HTTPDate {
    private var second = -1
    private var cached: [UInt8] = []

    mutating func now() -> [UInt8] {
        let seconds = time(nil)
        guard Int(seconds) != second else { return cached }
        second = Int(seconds)
        cached = Array(HTTPDateText.format(second).utf8)
        return cached
    }
}
