import Foundation

/// sd_notify without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path, or `@name` for an
/// abstract socket). Does nothing when the variable is unset (not started by systemd).
public final class SystemdNotifier: Sendable {
    private let fd: Int32
    private let address: sockaddr_un?
    private let length: socklen_t
    /// Half of `WATCHDOG_USEC`, in seconds, when systemd asks this process for keep-alives.
    public let watchdogInterval: Double?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        var interval: Double?
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0,
           environment["WATCHDOG_PID"].map({ Int32($0) == getpid() }) ?? true {
            interval = usec / 1e6 / 2
        }
        watchdogInterval = interval
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.hasPrefix("/") || path.hasPrefix("@") else {
            fd = -1
            address = nil
            length = 0
            return
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            fd = -1
            self.address = nil
            length = 0
            return
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            if bytes.first == UInt8(ascii: "@") { raw[0] = 0 }
        }
        self.address = address
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == UInt8(ascii: "@") ? 0 : 1))
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    public var isActive: Bool { fd >= 0 }

    /// Sends `state` (e.g. `READY=1\nSTATUS=…`); failures are ignored, as sd_notify does.
    public func notify(_ state: String) {
        guard fd >= 0, var address else { return }
        let bytes = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { target in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), target, length) }
            }
        }
    }

    /// `MONOTONIC_USEC=` for a reload notification: CLOCK_MONOTONIC in microseconds.
    public static func monotonicMicroseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }
}
