import Foundation

/// A loopback "gateway" that answers every request with the same raw bytes, whatever they are
/// (for answers no real server would send), then closes the connection. Stops when released.
final class RawGateway: Sendable {
    let port: UInt16
    private let fd: Int32

    init(answer: String) {
        let (fd, port) = loopbackSocket()
        listen(fd, 16)
        self.fd = fd
        self.port = port
        let bytes = Array(answer.utf8)
        Thread.detachNewThread {
            // Ends when `deinit` shuts the listening socket down (accept fails).
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                // Take the whole request (headers, then Content-Length bytes), then answer.
                var buffer = [UInt8](repeating: 0, count: 65536)
                var request: [UInt8] = []
                while true {
                    let count = recv(client, &buffer, buffer.count, 0)
                    if count <= 0 { break }
                    request += buffer[0..<count]
                    let text = String(decoding: request, as: UTF8.self)
                    guard let end = text.range(of: "\r\n\r\n") else { continue }
                    let length = text[..<end.lowerBound].split(separator: "\r\n")
                        .first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
                    if text.utf8.distance(from: text.startIndex, to: end.upperBound) + length <= request.count { break }
                }
                _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(client)
            }
        }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }
}
