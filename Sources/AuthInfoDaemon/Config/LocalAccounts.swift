import Glibc

/// Local user and group names resolved to ids (through NSS, so LDAP users work too), for the
/// Unix socket's grants.
enum LocalAccounts {
    /// The uid of user `name`, or `name` itself when it is a number and no user has that name.
    static func uid(of name: String) -> UInt32? {
        var entry = passwd(), result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        if getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil { return entry.pw_uid }
        return UInt32(name)
    }

    /// The gid of group `name`, or `name` itself when it is a number and no group has that name.
    static func gid(of name: String) -> UInt32? {
        var entry = group(), result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 64 * 1024)
        if getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil { return entry.gr_gid }
        return UInt32(name)
    }
}
