#if canImport(Glibc)
import Glibc
#endif

/// The one builder of `sockaddr_un`: a filesystem path, or `@name` for an abstract socket.
public struct UnixSocketAddress: Sendable {
    private let storage: sockaddr_un
    /// The length to pass with it (an abstract name counts exactly its bytes).
    public let length: socklen_t

    /// The address of `path`; fails with ENAMETOOLONG when it does not fit.
    public init(_ path: String) throws(SystemError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw SystemError(call: "socket path \(path) is longer than \(capacity - 1) bytes", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        storage = address
        let header = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        length = socklen_t(abstract ? header + bytes.count : MemoryLayout<sockaddr_un>.size)
    }

    /// Calls `body` with the address as a `sockaddr` pointer and its length.
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        var address = storage
        return try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }
}
