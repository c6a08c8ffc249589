import Foundation

/// The end of systemd's notify socket, as the service manager holds it: a Unix datagram socket
/// the daemon finds in `$NOTIFY_SOCKET`. The bench times a start to the `READY=1` the daemon
/// sends there (what `systemctl start` waits for), not to a log line.
final class NotifySocket {
    let path: String
    private let descriptor: Int32

    /// Binds a new socket at `path` (replacing a leftover one).
    init(path: String) throws {
        self.path = path
        unlink(path)
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw DaemonBench.BenchFailure(description: "cannot make a notify socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw DaemonBench.BenchFailure(description: "notify socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            close(descriptor)
            throw DaemonBench.BenchFailure(description: "cannot bind the notify socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// Waits for a datagram holding `READY=1` and returns when it came; fails after `timeout`
    /// seconds. Earlier messages (STATUS=…) are read and passed over.
    func waitForReady(timeout: Double) throws -> Date {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while case let left = deadline.timeIntervalSinceNow, left > 0 {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(left * 1000) + 1) > 0 else { continue }
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { continue }
            let message = String(decoding: buffer.prefix(count), as: UTF8.self)
            if message.split(separator: "\n").contains("READY=1") { return Date() }
        }
        throw DaemonBench.BenchFailure(description: "no READY=1 on \(path) in \(timeout) s")
    }
}
