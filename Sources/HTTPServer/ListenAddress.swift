#if canImport(Glibc)
import Glibc
#endif
import SystemCalls

/// Where an `HTTPServer` listens.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// A TCP address: an IPv4 or IPv6 literal and a port (0 picks a free one).
    case tcp(host: String, port: UInt16)
    /// A Unix-domain stream socket at this path, created with `mode` (e.g. 0o660). A stale socket
    /// there is replaced; any other kind of file, or a symlink, is refused.
    case unix(path: String, mode: mode_t)

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path, _): path
        }
    }
}

/// Opens listening sockets. Each function returns a non-blocking, close-on-exec descriptor that
/// the caller owns.
enum ListeningSocket {
    static let backlog: Int32 = 512

    /// A bound, listening socket: its descriptor (the caller's to close), the TCP port, and for
    /// a Unix socket the identity of its file.
    struct Bound {
        let fd: Int32
        var port: UInt16 = 0
        var file: (device: UInt64, inode: UInt64)?
    }

    /// Binds and listens on `host:port`; returns the descriptor and the bound port.
    static func tcp(host: String, port: UInt16) throws(SystemError) -> Bound {
        var storage = sockaddr_storage()
        let length: socklen_t
        let family: Int32
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw SystemError(call: "inet_pton(\(host))", errno: EINVAL) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            family = AF_INET6
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw SystemError(call: "inet_pton(\(host))", errno: EINVAL) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            family = AF_INET
        }
        let fd = try SystemCall.run("socket") { socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            var one: Int32 = 1
            try SystemCall.run("setsockopt(SO_REUSEADDR)") { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
            try SystemCall.run("bind(\(ListenAddress.tcp(host: host, port: port)))") {
                withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            }
            try SystemCall.run("listen") { listen(fd, backlog) }
            var bound = sockaddr_storage()
            var boundLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            try SystemCall.run("getsockname") {
                withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &boundLength) } }
            }
            let boundPort = withUnsafeBytes(of: &bound) { raw -> UInt16 in
                family == AF_INET6 ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
                    : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
            }
            return Bound(fd: fd, port: boundPort)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Binds a Unix socket at `path` with `mode`, atomically: the socket is bound in a private
    /// temporary directory beside `path`, given its mode, then renamed into place, so it is never
    /// reachable with looser permissions.
    static func unix(path: String, mode: mode_t) throws(SystemError) -> Bound {
        var status = stat()
        if lstat(path, &status) == 0, (status.st_mode & S_IFMT) != S_IFSOCK {
            throw SystemError(call: "refusing to replace \(path), which exists and is not a socket", errno: EEXIST)
        }
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var template = Array(((directory.isEmpty ? "." : directory) + "/.authinfod-sock-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SystemError(call: "mkdtemp(\(directory))", errno: Glibc.errno)
        }
        let temporaryDirectory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let temporaryPath = temporaryDirectory + "/s"
        defer {
            unlink(temporaryPath)
            rmdir(temporaryDirectory)
        }
        _ = try UnixSocketAddress(path)
        let address = try UnixSocketAddress(temporaryPath)
        let fd = try SystemCall.run("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try SystemCall.run("bind(\(path))") {
                address.withSockaddr { bind(fd, $0, $1) }
            }
            try SystemCall.run("chmod(\(path))") { chmod(temporaryPath, mode) }
            try SystemCall.run("listen(\(path))") { listen(fd, backlog) }
            try SystemCall.run("rename(\(path))") { rename(temporaryPath, path) }
            var placed = stat()
            try SystemCall.run("lstat(\(path))") { lstat(path, &placed) }
            return Bound(fd: fd, file: (UInt64(placed.st_dev), UInt64(placed.st_ino)))
        } catch {
            close(fd)
            throw error
        }
    }
}
