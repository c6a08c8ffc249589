import Synchronization
import SystemCalls

/// Refused requests: counted by reason for `authinfod_auth_failures_total`, and logged as
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

    private let counts = Mutex<[Reason: Int]>([:])
    private let gate = AddressLogGate()
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Counts a refusal of `caller` (a TCP client's name or a Unix peer; nil before a token
    /// matched) from `peer`, and logs it unless that address was logged in the last 10 s.
    func record(_ reason: Reason, peer: String, caller: String?) {
        counts.withLock { $0[reason, default: 0] += 1 }
        let address = AddressLogGate.address(of: peer)
        guard gate.admits(address) else { return }
        logger.warning("auth_failed", ["client": address, "reason": reason.rawValue, "caller": caller,
                                       "hint": "a request was refused; at most one line per address every 10 s, all counted in authinfod_auth_failures_total"])
    }

    /// The counter in Prometheus text, every reason present.
    func exposition() -> String {
        let counts = counts.withLock { $0 }
        var lines = ["# HELP authinfod_auth_failures_total Requests refused: no token, an unknown token, a device outside the caller's grant, or an admin action by a non-admin.",
                     "# TYPE authinfod_auth_failures_total counter"]
        for reason in Reason.allCases { lines.append("authinfod_auth_failures_total{reason=\"\(reason.rawValue)\"} \(counts[reason] ?? 0)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
