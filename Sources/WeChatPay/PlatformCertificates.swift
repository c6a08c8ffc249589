import Dispatch
import FoundationEssentials
import Synchronization

/// The platform certificates downloaded from `GET /v3/certificates`, by serial.
///
/// Used from the exchange threads, which may block: several requests that meet an unknown serial
/// at once wait on one download instead of each starting their own.
final class PlatformCertificates: Sendable {
    /// Periodic refresh, within the official SDKs' 1–24 h range.
    static let refreshInterval: TimeInterval = 12 * 3600
    /// Fewest seconds between two download attempts (unknown serials must not hammer the gateway).
    let minimumAttemptInterval: TimeInterval

    private struct State {
        var bySerial: [String: X509Certificate] = [:]
        var lastAttempt: Date?
        var lastSuccess: Date?
        /// The download under way; others wait on it.
        var inFlight: DispatchGroup?
    }

    private let state: Mutex<State>

    init(initial: [X509Certificate], downloadedAt: Date?, minimumAttemptInterval: TimeInterval) {
        self.minimumAttemptInterval = minimumAttemptInterval
        var state = State()
        state.lastSuccess = initial.isEmpty ? nil : downloadedAt
        for certificate in initial { state.bySerial[certificate.serialNumber] = certificate }
        self.state = Mutex(state)
    }

    func certificate(serial: String) -> X509Certificate? { state.withLock { $0.bySerial[serial.uppercased()] } }

    /// The serial to send as `Wechatpay-Serial`: the valid certificate that expires last.
    func newestValidSerial(at now: Date) -> String? {
        state.withLock { $0.bySerial.values.filter { $0.isValid(at: now) }.max { $0.notAfter < $1.notAfter }?.serialNumber }
    }

    /// Whether a periodic refresh is due (none yet, or the last success is older than 12 h).
    func isRefreshDue(at now: Date) -> Bool {
        state.withLock { state in
            guard let lastSuccess = state.lastSuccess else { return true }
            return now.timeIntervalSince(lastSuccess) >= Self.refreshInterval
        }
    }

    /// Calls `download` (which installs what it fetched), unless an attempt is under way (then
    /// waits for it) or the last one started less than `minimumAttemptInterval` ago (then returns
    /// at once). Failures keep the current set. Blocks: exchange threads only.
    func refresh(now: Date, download: () throws(WeChatPayError) -> Void) {
        enum Role { case wait(DispatchGroup), download(DispatchGroup), skip }
        let role = state.withLock { state -> Role in
            if let inFlight = state.inFlight { return .wait(inFlight) }
            if let lastAttempt = state.lastAttempt, now.timeIntervalSince(lastAttempt) < minimumAttemptInterval { return .skip }
            state.lastAttempt = now
            let group = DispatchGroup()
            group.enter()
            state.inFlight = group
            return .download(group)
        }
        switch role {
        case .skip: return
        case .wait(let group): group.wait()
        case .download(let group):
            _ = try? download()
            state.withLock { $0.inFlight = nil }
            group.leave()
        }
    }

    /// Replaces the set with a freshly downloaded and verified one.
    func install(_ certificates: [X509Certificate], at now: Date) {
        state.withLock { state in
            state.bySerial = Dictionary(certificates.map { ($0.serialNumber, $0) }, uniquingKeysWith: { _, newer in newer })
            state.lastSuccess = now
        }
    }
}
