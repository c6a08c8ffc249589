import Glibc

/// How the open-file limit is shared, so LAN clients can never take the descriptors the daemon
/// needs: a fixed reserve (the database, gateway calls, the hook, published files, listeners),
/// then the Unix socket's connections, and only the rest for LAN connections.
struct DescriptorBudget {
    /// Descriptors no client connection may take.
    static let reserve = 256
    /// Unix-socket connections at most, when the limit allows (a quarter of it otherwise).
    static let unixMaximum = 1024

    /// The soft open-file limit (`authinfod run` raises it to the hard one at start).
    let openFiles: Int

    static func current() -> DescriptorBudget {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return DescriptorBudget(openFiles: 1024) }
        return DescriptorBudget(openFiles: Int(clamping: min(limit.rlim_cur, 1 << 30)))
    }

    var unixConnections: Int { max(16, min(Self.unixMaximum, openFiles / 4)) }

    /// LAN connections at most: `configured`, or what the limit leaves after the reserve and
    /// the Unix socket's share when that is less.
    func tcpConnections(configured: Int) -> Int {
        max(16, min(configured, openFiles - Self.reserve - unixConnections))
    }
}
