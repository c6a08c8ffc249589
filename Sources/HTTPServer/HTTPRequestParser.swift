#if canImport(Glibc)
import Glibc
#endif

/// Size limits for untrusted requests.
public struct HTTPLimits: Sendable {
    /// Request line plus header block, in bytes (431 past it).
    public var maximumHeaderBytes = 16 * 1024
    /// Body, in bytes (413 past it).
    public var maximumBodyBytes = 64 * 1024
    /// Header fields per request (431 past it).
    public var maximumHeaderCount = 64

    public init() {}
}

/// What the parser made of the bytes received so far.
public enum HTTPParseResult: Sendable {
    /// The request is incomplete; read more. `scanned` bytes hold no header terminator, so the
    /// next parse may start its search there.
    case incomplete(scanned: Int)
    /// One complete request, which used the first `consumed` bytes.
    case request(HTTPRequest, consumed: Int)
    /// The bytes cannot become a valid request: answer `status` and close.
    case invalid(status: Int, reason: String)
}

/// A strict HTTP/1.x request parser: origin-form targets, token methods and header names, CRLF
/// line endings, `Content-Length` bodies only. Pure: safe to fuzz, never traps on any input.
///
/// It works on the received bytes in place (the hot path of every socket read): the only
/// allocations are the request's strings, its field list and its body.
public enum HTTPRequestParser {
    /// Parses the first request in `bytes`, looking for the end of the header block from
    /// `scanFrom` (what an earlier `.incomplete` reported).
    public static func parse(_ bytes: ArraySlice<UInt8>, scanFrom: Int = 0, limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
        bytes.withUnsafeBufferPointer { parse($0, scanFrom: scanFrom, limits: limits) }
    }

    private typealias Bytes = UnsafeBufferPointer<UInt8>

    private static func parse(_ bytes: Bytes, scanFrom: Int, limits: HTTPLimits) -> HTTPParseResult {
        let searchLimit = min(bytes.count, limits.maximumHeaderBytes + 4)
        guard let headerEnd = findTerminator(in: bytes, from: max(0, scanFrom - 3), to: searchLimit) else {
            if bytes.count > limits.maximumHeaderBytes + 3 {
                return .invalid(status: 431, reason: "request header block larger than \(limits.maximumHeaderBytes) bytes")
            }
            if let invalid = earlyProblem(bytes) { return invalid }
            return .incomplete(scanned: bytes.count)
        }
        // Lines end at CRLF; a bare CR or LF stays inside its line and fails the checks there.
        let requestLineEnd = lineEnd(in: bytes, from: 0, to: headerEnd)
        let method: String, target: String, minor: Int
        switch parseRequestLine(Bytes(rebasing: bytes[0..<requestLineEnd])) {
        case .success(let line): (method, target, minor) = line
        case .failure(let failure): return .invalid(status: failure.status, reason: failure.reason)
        }
        var fieldCount = 0
        var index = requestLineEnd
        while index < headerEnd {
            fieldCount += 1
            index = lineEnd(in: bytes, from: index + 2, to: headerEnd)
        }
        guard fieldCount <= limits.maximumHeaderCount else {
            return .invalid(status: 431, reason: "more than \(limits.maximumHeaderCount) header fields")
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(fieldCount)
        var contentLength: Int?
        var lineStart = requestLineEnd + 2
        while lineStart <= headerEnd {
            let end = lineEnd(in: bytes, from: lineStart, to: headerEnd)
            guard let (name, value) = parseHeader(Bytes(rebasing: bytes[lineStart..<end])) else {
                return .invalid(status: 400, reason: "malformed header field")
            }
            if equalsIgnoringCase(name, "transfer-encoding") {
                return .invalid(status: 501, reason: "Transfer-Encoding is not supported; send Content-Length")
            }
            if equalsIgnoringCase(name, "content-length") {
                guard let length = parseLength(value), contentLength == nil || contentLength == length else {
                    return .invalid(status: 400, reason: "invalid or conflicting Content-Length")
                }
                contentLength = length
            }
            headers.append((string(name), string(value)))
            lineStart = end + 2
        }
        let length = contentLength ?? 0
        guard length <= limits.maximumBodyBytes else {
            return .invalid(status: 413, reason: "body of \(length) bytes is larger than \(limits.maximumBodyBytes)")
        }
        let bodyStart = headerEnd + 4
        guard bytes.count - bodyStart >= length else { return .incomplete(scanned: headerEnd) }
        let body = length == 0 ? [] : Array(bytes[bodyStart..<(bodyStart + length)])
        let request = HTTPRequest(method: method, target: target, minorVersion: minor, headers: headers, body: body)
        return .request(request, consumed: bodyStart + length)
    }

    struct Failure: Error {
        let status: Int
        let reason: String
    }

    /// Refuses garbage before the header block is complete: a request line must start with a
    /// method token and a space within a few bytes.
    private static func earlyProblem(_ bytes: Bytes) -> HTTPParseResult? {
        var count = 0
        for byte in bytes {
            if byte == 0x20 { return count == 0 ? .invalid(status: 400, reason: "malformed request line") : nil }
            guard isTokenByte(byte), count < 16 else { return .invalid(status: 400, reason: "malformed request line") }
            count += 1
        }
        return nil
    }

    private static func parseRequestLine(_ line: Bytes) -> Result<(String, String, Int), Failure> {
        // Exactly two spaces: method, target, version.
        guard let firstSpace = line.firstIndex(of: 0x20),
              let secondSpace = line[(firstSpace + 1)...].firstIndex(of: 0x20),
              !line[(secondSpace + 1)...].contains(0x20) else {
            return .failure(Failure(status: 400, reason: "malformed request line"))
        }
        let method = Bytes(rebasing: line[..<firstSpace])
        let target = Bytes(rebasing: line[(firstSpace + 1)..<secondSpace])
        let version = Bytes(rebasing: line[(secondSpace + 1)...])
        guard (1...16).contains(method.count), method.allSatisfy(isTokenByte) else {
            return .failure(Failure(status: 400, reason: "malformed method"))
        }
        guard target.first == UInt8(ascii: "/"), target.count <= 8192, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(Failure(status: 400, reason: "request target must be an absolute path"))
        }
        let minor: Int
        if bytesEqual(version, "HTTP/1.1") {
            minor = 1
        } else if bytesEqual(version, "HTTP/1.0") {
            minor = 0
        } else if version.count >= 5, bytesEqual(Bytes(rebasing: version[..<5]), "HTTP/") {
            return .failure(Failure(status: 505, reason: "unsupported \(string(version))"))
        } else {
            return .failure(Failure(status: 400, reason: "malformed HTTP version"))
        }
        return .success((string(method), string(target), minor))
    }

    /// A field's name and value (surrounding blanks trimmed), or nil when the line is not one.
    private static func parseHeader(_ line: Bytes) -> (name: Bytes, value: Bytes)? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let name = Bytes(rebasing: line[..<colon])
        guard !name.isEmpty, name.allSatisfy(isTokenByte) else { return nil }
        var start = colon + 1, end = line.count
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
        let value = Bytes(rebasing: line[start..<end])
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        return (name, value)
    }

    private static func parseLength(_ text: Bytes) -> Int? {
        guard !text.isEmpty, text.count <= 10, text.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return text.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    /// Where the line starting at `from` ends: its CRLF, or `to` (the end of the header block).
    private static func lineEnd(in bytes: Bytes, from: Int, to end: Int) -> Int {
        var index = from
        while index + 1 < end {
            if bytes[index] == 13 && bytes[index + 1] == 10 { return index }
            index += 1
        }
        return end
    }

    /// The start of the first CRLFCRLF starting in `from..<to - 3`.
    private static func findTerminator(in bytes: Bytes, from: Int, to: Int) -> Int? {
        var index = from
        while index + 3 < to {
            if bytes[index] == 13, bytes[index + 1] == 10, bytes[index + 2] == 13, bytes[index + 3] == 10 { return index }
            index += 1
        }
        return nil
    }

    /// `name` equals the lowercase `lowercased`, ignoring ASCII case.
    private static func equalsIgnoringCase(_ name: Bytes, _ lowercased: StaticString) -> Bool {
        guard name.count == lowercased.utf8CodeUnitCount else { return false }
        let expected = lowercased.utf8Start
        for index in 0..<name.count where asciiLower(name[index]) != expected[index] { return false }
        return true
    }

    /// `bytes` are exactly `expected`'s.
    private static func bytesEqual(_ bytes: Bytes, _ expected: StaticString) -> Bool {
        bytes.count == expected.utf8CodeUnitCount && (bytes.isEmpty || memcmp(bytes.baseAddress!, expected.utf8Start, bytes.count) == 0)
    }

    private static func string(_ bytes: Bytes) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
