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
                while requestLength(request) == nil {
                    let count = recv(client, &buffer, buffer.count, 0)
                    if count <= 0 { break }
                    request += buffer[0..<count]
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
