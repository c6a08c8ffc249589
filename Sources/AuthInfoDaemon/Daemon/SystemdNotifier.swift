import FoundationEssentials
import Glibc
import SystemCalls

/// sd_notify without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path, or `@name` for an
/// abstract socket). Does nothing when the variable is unset (not started by systemd).
public final class SystemdNotifier: Sendable {
    private let fd: Int32
    private let address: UnixSocketAddress?
    /// Half of `WATCHDOG_USEC`, in seconds, when systemd asks this process for keep-alives.
    public let watchdogInterval: Double?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        var interval: Double?
        if let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0,
           environment["WATCHDOG_PID"].map({ Int32($0) == getpid() }) ?? true {
            interval = usec / 1e6 / 2
        }
        watchdogInterval = interval
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@"),
              let address = try? UnixSocketAddress(path) else {
            fd = -1
            address = nil
            return
        }
        self.address = address
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    public var isActive: Bool { fd >= 0 }

    /// Sends `state` (e.g. `READY=1\nSTATUS=…`); failures are ignored, as sd_notify does.
    public func notify(_ state: String) {
        guard fd >= 0, let address else { return }
        let bytes = Array(state.utf8)
        _ = address.withSockaddr { target, length in
            bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), target, length) }
        }
    }
}
