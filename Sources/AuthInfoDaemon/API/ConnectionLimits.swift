import HTTPServer
import Synchronization

/// LAN connections closed by `listen.max_connections` or `listen.max_connections_per_address`:
/// counted for `authinfod_connections_limited_total{cap,action}`, and logged as
/// `event=connection_limited` at most once per address every 10 s.
final class ConnectionLimits: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let gate = AddressLogGate()
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func record(_ event: ConnectionLimitEvent) {
        counts.withLock { $0["\(event.cap.rawValue)/\(event.action.rawValue)", default: 0] += 1 }
        guard gate.admits(event.address) else { return }
        let key = event.cap == .total ? "listen.max_connections" : "listen.max_connections_per_address"
        let what = event.action == .shedIdle ? "the connection idle the longest was closed to let a new one in"
            : "every connection was busy, so the new one was refused"
        logger.warning("connection_limited", ["client": event.address, "cap": event.cap.rawValue, "action": event.action.rawValue,
                                              "hint": "\(key) reached: \(what); at most one line per address every 10 s, all counted in authinfod_connections_limited_total"])
    }

    /// The counter and the open-connection gauge in Prometheus text.
    func exposition(open: [(listener: String, count: Int)]) -> String {
        let counts = counts.withLock { $0 }
        var lines = ["# HELP authinfod_connections_limited_total LAN connections closed by a connection cap: refused, or an idle one shed for a new one.",
                     "# TYPE authinfod_connections_limited_total counter"]
        for cap in [ConnectionLimitEvent.Cap.total, .perAddress] {
            for action in [ConnectionLimitEvent.Action.refused, .shedIdle] {
                lines.append("authinfod_connections_limited_total{cap=\"\(cap.rawValue)\",action=\"\(action.rawValue)\"} \(counts["\(cap.rawValue)/\(action.rawValue)"] ?? 0)")
            }
        }
        lines += ["# HELP authinfod_connections_open Client connections open now, by listener.", "# TYPE authinfod_connections_open gauge"]
        for (listener, count) in open { lines.append("authinfod_connections_open{listener=\"\(listener)\"} \(count)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
