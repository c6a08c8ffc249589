import FoundationEssentials
import Glibc
import SystemCalls

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
        let address: UnixSocketAddress
        let socket: FileDescriptor
        do {
            address = try UnixSocketAddress(path)
            socket = FileDescriptor(owning: try SystemCall.run("socket") { Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        } catch {
            throw .failed(error.description)
        }
        let fd = socket.raw
        var interval = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
        do {
            try SystemCall.run("connect") { address.withSockaddr { connect(fd, $0, $1) } }
        } catch {
            if error.errno == ENOENT || error.errno == ECONNREFUSED { throw .notRunning("no daemon answers on \(path) (\(error.reason))") }
            throw .failed("cannot connect to \(path): \(error.reason)")
        }
        let head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nUser-Agent: authinfod-cli\r\nConnection: close\r\nContent-Length: \(body.count)\r\n\r\n"
        let request = Array(head.utf8) + body
        do {
            try socket.writeAll(request)
        } catch {
            throw .failed("cannot send to \(path): \(error.reason)")
        }
        let answer: [UInt8]
        do {
            answer = try socket.readAll(limit: 64 << 20 + 1)
        } catch {
            throw .failed("no answer from \(path) within \(Int(timeout)) s")
        }
        guard answer.count <= 64 << 20 else { throw .failed("answer from \(path) is too large") }
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
