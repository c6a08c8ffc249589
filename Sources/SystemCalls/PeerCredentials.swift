#if canImport(Glibc)
import Glibc
#endif

/// Who is at the other end of a connected Unix socket, as the kernel saw it when it connected
/// (`SO_PEERCRED`, `SO_PEERGROUPS`): it cannot be forged by the peer.
public struct PeerCredentials: Sendable, Equatable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
    /// Supplementary groups (may include `gid`).
    public let groups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// The credentials of the peer of the connected Unix socket `fd`.
    public static func of(_ fd: Int32) throws(SystemError) -> PeerCredentials {
        // struct ucred: pid_t pid; uid_t uid; gid_t gid (Glibc's module hides it behind _GNU_SOURCE).
        var ucred: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: ucred))
        try SystemCall.run("getsockopt(SO_PEERCRED)") { getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred, &length) }
        var groups = [UInt32](repeating: 0, count: 64)
        while true {
            var size = socklen_t(groups.count * MemoryLayout<UInt32>.size)
            let status = groups.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, $0.baseAddress, &size) }
            if status == 0 {
                groups.removeLast(groups.count - Int(size) / MemoryLayout<UInt32>.size)
                break
            }
            guard errno == ERANGE, Int(size) > groups.count * MemoryLayout<UInt32>.size, size <= 65536 * 4 else {
                throw SystemError(call: "getsockopt(SO_PEERGROUPS)", errno: errno)
            }
            groups = [UInt32](repeating: 0, count: Int(size) / MemoryLayout<UInt32>.size)
        }
        return PeerCredentials(pid: ucred.pid, uid: ucred.uid, gid: ucred.gid, groups: groups)
    }

    /// Whether the peer is in group `gid`, as its primary or a supplementary group.
    public func isMember(of gid: UInt32) -> Bool {
        self.gid == gid || groups.contains(gid)
    }
}
