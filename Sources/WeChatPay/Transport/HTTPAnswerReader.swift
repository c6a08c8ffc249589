/// Where an answer's bytes come from: a gateway connection, or (for the fuzzer) bytes in chunks.
protocol AnswerByteSource {
    /// The host, for error messages.
    var host: String { get }
    /// Appends what is available to `buffer`, waiting until `deadline`; the count, 0 at the end.
    func read(into buffer: inout [UInt8], deadline: Double) throws(TransportFailure) -> Int
}

extension GatewayConnection: AnswerByteSource {}

/// Reads one HTTP/1.1 answer from a connection: the status line, header fields, and a body framed
/// by `Content-Length`, `chunked` transfer coding, or the end of the stream. Refuses oversized
/// headers or bodies and anything that is not HTTP.
struct HTTPAnswerReader<Source: AnswerByteSource> {
    static var maximumHeaderBytes: Int { 64 * 1024 }

    let connection: Source
    let deadline: Double
    let maximumBodyBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0

    init(connection: Source, deadline: Double, maximumBodyBytes: Int) {
        self.connection = connection
        self.deadline = deadline
        self.maximumBodyBytes = maximumBodyBytes
    }

    /// The answer, and whether the connection may carry another request.
    mutating func read() throws(TransportFailure) -> (GatewayAnswer, reusable: Bool) {
        // Counted over interim (1xx) answers too: an endless stream of them is refused.
        var headerBytes = 0
        while true {
            // Parsed from the buffer's bytes: only names and values become strings.
            let head = try line(limit: Self.maximumHeaderBytes - headerBytes, what: "status line")
            guard let (status, isHTTP11) = Self.statusLine(buffer[head]) else { throw malformed("not an HTTP answer") }
            var headers: [String: String] = Dictionary(minimumCapacity: 16)
            headerBytes += head.count + 2
            while true {
                let field = try line(limit: Self.maximumHeaderBytes - headerBytes, what: "header block")
                headerBytes += field.count + 2
                if field.isEmpty { break }
                guard let colon = buffer[field].firstIndex(of: 0x3A) else { throw malformed("header field without a colon") }
                let name = Self.lowercased(buffer[field.lowerBound..<colon])
                let value = Self.withoutOptionalWhitespace(buffer[(colon + 1)..<field.upperBound])
                headers[name] = headers[name].map { $0 + ", " + value } ?? value
            }
            if (100...199).contains(status) { continue }
            let keepAlive = isHTTP11 ? headers["connection"]?.lowercased() != "close"
                : headers["connection"]?.lowercased() == "keep-alive"
            let body: [UInt8]
            var reusable = keepAlive
            if status == 204 || status == 304 {
                body = []
            } else if let coding = headers["transfer-encoding"] {
                guard coding.lowercased().hasSuffix("chunked") else { throw malformed("unsupported Transfer-Encoding \(coding)") }
                body = try chunkedBody()
            } else if let length = headers["content-length"] {
                guard let count = Int(length), count >= 0, length.utf8.allSatisfy({ (48...57).contains($0) }) else {
                    throw malformed("invalid Content-Length \(length)")
                }
                guard count <= maximumBodyBytes else { throw oversized(count) }
                body = try bytes(count)
            } else {
                body = try bodyToEnd()
                reusable = false
            }
            reusable = reusable && start == buffer.count
            return (GatewayAnswer(status: status, lowercasedHeaders: headers, body: body), reusable)
        }
    }

    /// The status code of an `HTTP/1.x NNN reason` line, and whether it is HTTP/1.1; nil when it
    /// is not one.
    private static func statusLine(_ line: ArraySlice<UInt8>) -> (status: Int, isHTTP11: Bool)? {
        let version = line.prefix { $0 != 0x20 }
        guard version.starts(with: "HTTP/1.".utf8), version.endIndex < line.endIndex else { return nil }
        let code = line[(version.endIndex + 1)...].prefix { $0 != 0x20 }
        guard code.count == 3, code.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        let status = code.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard (100...599).contains(status) else { return nil }
        return (status, version.elementsEqual("HTTP/1.1".utf8))
    }

    /// A header name as a string with ASCII letters lower-cased (names are ASCII tokens).
    private static func lowercased(_ bytes: ArraySlice<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { output in
            for (offset, byte) in bytes.enumerated() { output[offset] = (0x41...0x5A).contains(byte) ? byte | 0x20 : byte }
            return bytes.count
        }
    }

    /// Without leading and trailing spaces and tabs (optional whitespace, RFC 9110).
    private static func withoutOptionalWhitespace(_ bytes: ArraySlice<UInt8>) -> String {
        var bytes = bytes
        while let first = bytes.first, first == 0x20 || first == 0x09 { bytes = bytes.dropFirst() }
        while let last = bytes.last, last == 0x20 || last == 0x09 { bytes = bytes.dropLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    private mutating func chunkedBody() throws(TransportFailure) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeLine = try line(limit: 1024, what: "chunk size")
            let digits = Self.withoutOptionalWhitespace(buffer[sizeLine].prefix { $0 != 0x3B })
            // Hex digits only: Int(_:radix:) would also take a sign, and a negative size must
            // never reach the reads below.
            guard !digits.isEmpty, digits.count <= 8, digits.utf8.allSatisfy({ $0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit }),
                  let size = Int(digits, radix: 16) else {
                throw malformed("invalid chunk size \"\(digits.prefix(16))\"")
            }
            if size == 0 { break }
            guard body.count + size <= maximumBodyBytes else { throw oversized(body.count + size) }
            body += try bytes(size)
            guard try line(limit: 2, what: "chunk end").isEmpty else { throw malformed("chunk longer than its size") }
        }
        var trailerBytes = 0
        while true {
            let trailer = try line(limit: Self.maximumHeaderBytes - trailerBytes, what: "trailer")
            if trailer.isEmpty { return body }
            trailerBytes += trailer.count + 2
        }
    }

    private mutating func bodyToEnd() throws(TransportFailure) -> [UInt8] {
        // Checked before each read too: what arrived with the header block counts.
        repeat {
            guard buffer.count - start <= maximumBodyBytes else { throw oversized(buffer.count - start) }
        } while try connection.read(into: &buffer, deadline: deadline) > 0
        defer { start = buffer.count }
        return Array(buffer[start...])
    }

    /// Where the next CRLF-terminated line (without the CRLF) is in `buffer`, read within `limit`
    /// bytes; valid until the next read.
    private mutating func line(limit: Int, what: String) throws(TransportFailure) -> Range<Int> {
        // How far past `start` the search already went: an offset, because `more()` may move
        // the unread bytes to the front of the buffer.
        var searched = 0
        while true {
            if let end = indexOfCRLF(from: start + searched) {
                // The same limit whether the line came in one read or many.
                guard end - start <= max(0, limit) else { throw malformed("\(what) too long") }
                defer { start = end + 2 }
                return start..<end
            }
            guard buffer.count - start <= max(0, limit) else { throw malformed("\(what) too long") }
            searched = max(0, buffer.count - 1 - start)
            try more()
        }
    }

    private mutating func bytes(_ count: Int) throws(TransportFailure) -> [UInt8] {
        while buffer.count - start < count { try more() }
        defer { start += count }
        return Array(buffer[start..<(start + count)])
    }

    private mutating func more() throws(TransportFailure) {
        if start > 64 * 1024 {
            buffer.removeFirst(start)
            start = 0
        }
        let before = buffer.count
        guard try connection.read(into: &buffer, deadline: deadline) > 0 else {
            var failure = TransportFailure(.exchange, "connection closed before the answer was complete", host: connection.host)
            failure.answerBegan = before > 0 || start > 0
            throw failure
        }
    }

    private func indexOfCRLF(from index: Int) -> Int? {
        var position = index
        while position + 1 < buffer.count {
            if buffer[position] == 13 && buffer[position + 1] == 10 { return position }
            position += 1
        }
        return nil
    }

    private func malformed(_ reason: String) -> TransportFailure {
        var failure = TransportFailure(.exchange, "invalid HTTP answer: \(reason)", host: connection.host)
        failure.answerBegan = true
        return failure
    }

    private func oversized(_ count: Int) -> TransportFailure {
        var failure = TransportFailure(.oversized, "answer of \(count) bytes is larger than \(maximumBodyBytes)", host: connection.host)
        failure.answerBegan = true
        return failure
    }
}

/// An answer read from the bytes a connection delivered so far, by a reader that never waits
/// (the gateway loop): complete, failed, or not yet decidable.
enum ReceivedAnswer {
    /// The answer in `bytes`, or why they are not one; nil while the answer needs more bytes.
    /// `ended`: the peer closed the stream after them (which completes a body read to the end).
    static func parse(_ bytes: [UInt8], ended: Bool, host: String,
                      maximumBodyBytes: Int) -> Result<(answer: GatewayAnswer, reusable: Bool), TransportFailure>? {
        let source = ReceivedBytes(host: host, bytes: bytes)
        var reader = HTTPAnswerReader(connection: source, deadline: .infinity, maximumBodyBytes: maximumBodyBytes)
        let result = Result { () throws(TransportFailure) in try reader.read() }
        // Whatever the reader made of running out of bytes (the end of a body read to the end,
        // or an answer cut short) is only known once the stream has ended.
        if source.starved && !ended { return nil }
        return result.map { (answer: $0.0, reusable: $0.reusable) }
    }

    /// The most bytes an answer whose body is at most `maximumBodyBytes` may take on the wire:
    /// a full header block and twice the body, for a chunked body's framing. More is refused
    /// before the answer is even complete.
    static func maximumBytes(body maximumBodyBytes: Int) -> Int {
        HTTPAnswerReader<ReceivedBytes>.maximumHeaderBytes + 2 * maximumBodyBytes
    }

    private final class ReceivedBytes: AnswerByteSource {
        let host: String
        private var unread: [UInt8]
        /// The reader asked for more than there was.
        private(set) var starved = false

        init(host: String, bytes: [UInt8]) {
            self.host = host
            unread = bytes
        }

        func read(into buffer: inout [UInt8], deadline: Double) throws(TransportFailure) -> Int {
            guard !unread.isEmpty else {
                starved = true
                return 0
            }
            defer { unread = [] }
            // The reader's buffer starts empty: it takes these bytes without a copy.
            if buffer.isEmpty { buffer = unread } else { buffer += unread }
            return unread.count
        }
    }
}

/// Reads answers from bytes in memory, as they would arrive in `chunks` on a connection: what the
/// answer fuzzer drives, so every read boundary the network could produce is exercised.
public enum HTTPAnswerReplay {
    /// What reading gave: the answer and whether the connection could be reused, or the
    /// transport failure's description.
    public static func read(chunks: [[UInt8]], maximumBodyBytes: Int) -> Result<(answer: GatewayAnswer, reusable: Bool), ReplayFailure> {
        var reader = HTTPAnswerReader(connection: ChunkSource(chunks: chunks), deadline: .infinity, maximumBodyBytes: maximumBodyBytes)
        do {
            let (answer, reusable) = try reader.read()
            return .success((answer, reusable))
        } catch {
            return .failure(ReplayFailure(description: error.reason, oversized: error.stage == .oversized))
        }
    }

    public struct ReplayFailure: Error, CustomStringConvertible {
        public let description: String
        /// The answer was refused for its size.
        public let oversized: Bool
    }

    private final class ChunkSource: AnswerByteSource {
        let host = "replay"
        private var chunks: ArraySlice<[UInt8]>

        init(chunks: [[UInt8]]) { self.chunks = chunks[...] }

        func read(into buffer: inout [UInt8], deadline: Double) throws(TransportFailure) -> Int {
            while let chunk = chunks.popFirst() {
                if chunk.isEmpty { continue }
                buffer += chunk
                return chunk.count
            }
            return 0
        }
    }
}

