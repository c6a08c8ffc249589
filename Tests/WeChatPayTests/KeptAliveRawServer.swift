import Foundation
import Synchronization

/// A loopback server that keeps connections open and answers each request on them with what
/// `answer` gives for that request's number on the connection (0, 1, …): raw bytes no real
/// server would send, or nil to never answer. Stops when released.
final class KeptAliveRawServer: Sendable {
    let port: UInt16
    private let fd: Int32
    /// Bytes written by every connection so far.
    var written: Int { counter.written.load(ordering: .relaxed) }
    private let counter = Counter()

    final class Counter: Sendable {
        let written = Atomic<Int>(0)
    }

    init(answer: @escaping @Sendable (_ request: Int) -> Answer) {
        let (fd, port) = loopbackSocket()
        listen(fd, 16)
        self.fd = fd
        self.port = port
        let counter = counter
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                Thread.detachNewThread { Self.serve(client, answer: answer, counter: counter) }
            }
        }
    }

    /// What to send for one request.
    enum Answer: Sendable {
        case bytes([UInt8])
        /// `prefix`, then `bytes` again and again, until the client goes away or `limit` bytes are out.
        case flood(prefix: [UInt8] = [], [UInt8], limit: Int)
        case nothing
    }

    private static func serve(_ client: Int32, answer: @Sendable (Int) -> Answer, counter: Counter) {
        defer { close(client) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var pending: [UInt8] = []
        var index = 0
        while true {
            // One request: headers, then Content-Length bytes.
            while requestLength(pending) == nil {
                let count = recv(client, &buffer, buffer.count, 0)
                if count <= 0 { return }
                pending += buffer[0..<count]
            }
            pending.removeFirst(requestLength(pending)!)
            switch answer(index) {
            case .bytes(let bytes):
                guard send(client, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else { return }
                counter.written.add(bytes.count, ordering: .relaxed)
            case .flood(let prefix, let bytes, let limit):
                guard send(client, prefix, prefix.count, Int32(MSG_NOSIGNAL)) == prefix.count else { return }
                var sent = prefix.count
                while sent < limit {
                    let count = send(client, bytes, bytes.count, Int32(MSG_NOSIGNAL))
                    if count <= 0 { return }
                    sent += count
                    counter.written.add(count, ordering: .relaxed)
                }
            case .nothing:
                while recv(client, &buffer, buffer.count, 0) > 0 {}
                return
            }
            index += 1
        }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }
}

/// The length of the HTTP request at the start of `bytes` (header block and Content-Length
/// body), or nil while it is incomplete.
func requestLength(_ bytes: [UInt8]) -> Int? {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let end = text.range(of: "\r\n\r\n") else { return nil }
    let length = text[..<end.lowerBound].split(separator: "\r\n")
        .first { $0.lowercased().hasPrefix("content-length:") }
        .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
    let total = text.utf8.distance(from: text.startIndex, to: end.upperBound) + length
    return total <= bytes.count ? total : nil
}
