import Foundation

/// A minimal blocking HTTP/1.1 client over the daemon's Unix socket, for the CLI.
public enum UnixSocketClient {
    public struct Response {
        public let status: Int
        public let body: [UInt8]
    }

    /// Why no answer came: `notRunning` when nothing listens on the socket.
    public enum Failure: Error, CustomStringConvertible {
        case notRunning(String)
        case failed(String)

        public var description: String {
            switch self {
            case .notRunning(let reason), .failed(let reason): reason
            }
        }
    }

    /// Sends one request and reads the whole answer (at most `timeout` seconds).
    public static func request(socket path: String, method: String, path target: String, body: [UInt8] = [], timeout: Double = 10) throws(Failure) -> Response {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw .failed("socket path \(path) is too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        var interval = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            if code == ENOENT || code == ECONNREFUSED { throw .notRunning("no daemon answers on \(path) (\(String(cString: strerror(code))))") }
            throw .failed("cannot connect to \(path): \(String(cString: strerror(code)))")
        }
        let head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: authinfod-cli\r\nConnection: close\r\nContent-Length: \(body.count)\r\n\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let count = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .failed("cannot send to \(path): \(String(cString: strerror(errno)))") }
            sent += count
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw .failed("no answer from \(path) within \(Int(timeout)) s") }
            if count == 0 { break }
            answer += buffer[0..<count]
            guard answer.count <= 64 << 20 else { throw .failed("answer from \(path) is too large") }
        }
        return try parse(answer, from: path)
    }

    static func parse(_ answer: [UInt8], from path: String) throws(Failure) -> Response {
        guard let end = answer.indices.dropLast(3).first(where: { answer[$0] == 13 && answer[$0 + 1] == 10 && answer[$0 + 2] == 13 && answer[$0 + 3] == 10 }) else {
            throw .failed("malformed answer from \(path)")
        }
        let head = String(decoding: answer[..<end], as: UTF8.self)
        let statusLine = head.split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else { throw .failed("malformed answer from \(path)") }
        return Response(status: status, body: Array(answer[(end + 4)...]))
    }
}
