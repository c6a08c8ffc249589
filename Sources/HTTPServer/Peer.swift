#if canImport(Glibc)
import Glibc
#endif
import SystemCalls

/// Who is at the other end of an accepted connection, read once when it is accepted.
struct Peer {
    /// `address:port` of a TCP client (`[v6]:port`), or `unix uid=N` on a Unix socket.
    let text: String
    /// What the per-address cap counts: an IPv4 address, an IPv6 client's /64 (one host can
    /// hold a whole /64), nil on a Unix socket.
    let address: String?
    /// The kernel's word on a Unix socket's peer.
    let credentials: PeerCredentials?

    init(tcp fd: Int32) {
        credentials = nil
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) } }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(storage.ss_family) {
        case AF_INET where status == 0:
            var address = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }
            inet_ntop(AF_INET, &address.sin_addr, &text, socklen_t(text.count))
            let host = Self.string(text)
            self.text = "\(host):\(UInt16(bigEndian: address.sin_port))"
            self.address = host
        case AF_INET6 where status == 0:
            var address = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
            inet_ntop(AF_INET6, &address.sin6_addr, &text, socklen_t(text.count))
            let host = Self.string(text)
            self.text = "[\(host)]:\(UInt16(bigEndian: address.sin6_port))"
            self.address = Self.countedAddress(ipv6: address.sin6_addr, text: host)
        default:
            self.text = "unknown"
            self.address = "unknown"
        }
    }

    init(unix fd: Int32) {
        address = nil
        credentials = try? PeerCredentials.of(fd)
        text = credentials.map { "unix uid=\($0.uid)" } ?? "unix"
    }

    /// An IPv4-mapped address counts as its IPv4 address; any other IPv6 address as its /64.
    private static func countedAddress(ipv6 address: in6_addr, text: String) -> String {
        let bytes = withUnsafeBytes(of: address) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
        }
        var prefix = in6_addr()
        withUnsafeMutableBytes(of: &prefix) { raw in for index in 0..<8 { raw[index] = bytes[index] } }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &prefix, &buffer, socklen_t(buffer.count))
        return Self.string(buffer) + "/64"
    }

    private static func string(_ characters: [CChar]) -> String {
        String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
