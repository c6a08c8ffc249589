import Synchronization
import SystemCalls

/// Refused LAN requests: counted by reason for `authinfod_auth_failures_total`, and logged as
/// `event=auth_failed` at most once per client address every 10 s, so a scan cannot flood the
/// log. Never with the token.
final class AuthFailures: Sendable {
    enum Reason: String, CaseIterable {
        /// No `Authorization: Bearer` header.
        case missingToken = "missing_token"
        /// A token no client has.
        case invalidToken = "invalid_token"
        /// A valid client asking for a device outside its scope.
        case outOfScope = "out_of_scope"
        /// A valid client asking for what only an admin may (status, metrics, tokens, refresh).
        case notAdmin = "not_admin"
    }

    static let logInterval = 10.0

    private struct State {
        var counts: [Reason: Int] = [:]
        /// When each address was last logged (monotonic).
        var logged: [String: Double] = [:]
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func record(_ reason: Reason, peer: String, client: String?) {
        let address = Self.address(of: peer)
        let now = MonotonicClock.now()
        let shouldLog = state.withLock { state -> Bool in
            state.counts[reason, default: 0] += 1
            if let last = state.logged[address], now - last < Self.logInterval { return false }
            if state.logged.count >= 10_000 { state.logged = state.logged.filter { now - $0.value < Self.logInterval } }
            state.logged[address] = now
            return true
        }
        guard shouldLog else { return }
        logger.warning("auth_failed", ["client": address, "reason": reason.rawValue, "tcp_client": client,
                                       "hint": "a LAN request was refused; at most one line per address every 10 s, all counted in authinfod_auth_failures_total"])
    }

    /// The counter in Prometheus text, every reason present.
    func exposition() -> String {
        let counts = state.withLock { $0.counts }
        var lines = ["# HELP authinfod_auth_failures_total LAN requests refused: no token, an unknown token, a device outside the client's scope, or an admin action by a non-admin.",
                     "# TYPE authinfod_auth_failures_total counter"]
        for reason in Reason.allCases { lines.append("authinfod_auth_failures_total{reason=\"\(reason.rawValue)\"} \(counts[reason] ?? 0)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The address without its port: one client opening many connections is one address.
    static func address(of peer: String) -> String {
        if peer.hasPrefix("["), let end = peer.firstIndex(of: "]") { return String(peer[...end]) }
        guard let colon = peer.lastIndex(of: ":") else { return peer }
        return String(peer[..<colon])
    }
}
