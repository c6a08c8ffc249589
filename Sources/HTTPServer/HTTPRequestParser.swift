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
public enum HTTPRequestParser {
    static let crlfcrlf: [UInt8] = [13, 10, 13, 10]

    /// Parses the first request in `bytes`, looking for the end of the header block from
    /// `scanFrom` (what an earlier `.incomplete` reported).
    public static func parse(_ bytes: ArraySlice<UInt8>, scanFrom: Int = 0, limits: HTTPLimits = HTTPLimits()) -> HTTPParseResult {
        let base = bytes.startIndex
        let searchLimit = min(bytes.count, limits.maximumHeaderBytes + 4)
        guard let headerEnd = find(crlfcrlf, in: bytes, from: base + max(0, scanFrom - 3), to: base + searchLimit) else {
            if bytes.count > limits.maximumHeaderBytes + 3 {
                return .invalid(status: 431, reason: "request header block larger than \(limits.maximumHeaderBytes) bytes")
            }
            if let invalid = earlyProblem(bytes) { return invalid }
            return .incomplete(scanned: max(0, bytes.count))
        }
        let head = bytes[base..<headerEnd]
        var lines = split(head)
        guard !lines.isEmpty else { return .invalid(status: 400, reason: "empty request") }
        let requestLine = lines.removeFirst()
        let method: String, target: String, minor: Int
        switch parseRequestLine(requestLine) {
        case .success(let line): (method, target, minor) = line
        case .failure(let failure): return .invalid(status: failure.status, reason: failure.reason)
        }
        guard lines.count <= limits.maximumHeaderCount else {
            return .invalid(status: 431, reason: "more than \(limits.maximumHeaderCount) header fields")
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count)
        var contentLength: Int?
        for line in lines {
            guard let field = parseHeader(line) else { return .invalid(status: 400, reason: "malformed header field") }
            if field.name.caseInsensitiveEquals("Transfer-Encoding") {
                return .invalid(status: 501, reason: "Transfer-Encoding is not supported; send Content-Length")
            }
            if field.name.caseInsensitiveEquals("Content-Length") {
                guard let length = parseLength(field.value), contentLength == nil || contentLength == length else {
                    return .invalid(status: 400, reason: "invalid or conflicting Content-Length")
                }
                contentLength = length
            }
            headers.append(field)
        }
        let length = contentLength ?? 0
        guard length <= limits.maximumBodyBytes else {
            return .invalid(status: 413, reason: "body of \(length) bytes is larger than \(limits.maximumBodyBytes)")
        }
        let bodyStart = headerEnd + 4
        guard bytes.endIndex - bodyStart >= length else { return .incomplete(scanned: headerEnd - base) }
        let body = Array(bytes[bodyStart..<(bodyStart + length)])
        let request = HTTPRequest(method: method, target: target, minorVersion: minor, headers: headers, body: body)
        return .request(request, consumed: bodyStart + length - base)
    }

    struct Failure: Error {
        let status: Int
        let reason: String
    }

    /// Refuses garbage before the header block is complete: a request line must start with a
    /// method token and a space within a few bytes.
    private static func earlyProblem(_ bytes: ArraySlice<UInt8>) -> HTTPParseResult? {
        var count = 0
        for byte in bytes {
            if byte == 0x20 { return count == 0 ? .invalid(status: 400, reason: "malformed request line") : nil }
            guard isTokenByte(byte), count < 16 else { return .invalid(status: 400, reason: "malformed request line") }
            count += 1
        }
        return nil
    }

    private static func parseRequestLine(_ line: ArraySlice<UInt8>) -> Result<(String, String, Int), Failure> {
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(Failure(status: 400, reason: "malformed request line")) }
        let method = parts[0], target = parts[1], version = parts[2]
        guard (1...16).contains(method.count), method.allSatisfy(isTokenByte) else {
            return .failure(Failure(status: 400, reason: "malformed method"))
        }
        guard target.first == UInt8(ascii: "/"), target.count <= 8192, target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(Failure(status: 400, reason: "request target must be an absolute path"))
        }
        let minor: Int
        switch String(decoding: version, as: UTF8.self) {
        case "HTTP/1.1": minor = 1
        case "HTTP/1.0": minor = 0
        case let other where other.hasPrefix("HTTP/"): return .failure(Failure(status: 505, reason: "unsupported \(other)"))
        default: return .failure(Failure(status: 400, reason: "malformed HTTP version"))
        }
        return .success((String(decoding: method, as: UTF8.self), String(decoding: target, as: UTF8.self), minor))
    }

    private static func parseHeader(_ line: ArraySlice<UInt8>) -> (name: String, value: String)? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty, name.allSatisfy(isTokenByte) else { return nil }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
        while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        return (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    private static func parseLength(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
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

    /// Splits a header block on CRLF; a bare CR or LF inside a line makes that line invalid
    /// (it then fails the field checks), and obs-fold continuation lines fail as header names.
    private static func split(_ head: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = head.startIndex
        var index = head.startIndex
        while index < head.endIndex {
            if head[index] == 13, index + 1 < head.endIndex, head[index + 1] == 10 {
                lines.append(head[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        lines.append(head[start..<head.endIndex])
        return lines
    }

    private static func find(_ needle: [UInt8], in bytes: ArraySlice<UInt8>, from: Int, to: Int) -> Int? {
        var index = max(from, bytes.startIndex)
        let last = to - needle.count
        while index <= last {
            if bytes[index] == needle[0], bytes[index + 1] == needle[1], bytes[index + 2] == needle[2], bytes[index + 3] == needle[3] {
                return index
            }
            index += 1
        }
        return nil
    }
}
