import Foundation

/// The platform certificates downloaded from `GET /v3/certificates`, by serial.
///
/// An actor because certificate downloads are shared: several requests that meet an unknown
/// serial at once wait on one download instead of each starting their own.
actor PlatformCertificates {
    /// Periodic refresh, within the official SDKs' 1–24 h range.
    static let refreshInterval: TimeInterval = 12 * 3600
    /// Fewest seconds between two download attempts (unknown serials must not hammer the gateway).
    let minimumAttemptInterval: TimeInterval

    private var bySerial: [String: X509Certificate] = [:]
    private var lastAttempt: Date?
    private var lastSuccess: Date?
    private var inFlight: Task<Void, Never>?

    init(initial: [X509Certificate], downloadedAt: Date?, minimumAttemptInterval: TimeInterval) {
        self.minimumAttemptInterval = minimumAttemptInterval
        lastSuccess = initial.isEmpty ? nil : downloadedAt
        for certificate in initial { bySerial[certificate.serialNumber] = certificate }
    }

    func certificate(serial: String) -> X509Certificate? { bySerial[serial.uppercased()] }

    /// The serial to send as `Wechatpay-Serial`: the valid certificate that expires last.
    func newestValidSerial(at now: Date) -> String? {
        bySerial.values.filter { $0.isValid(at: now) }.max { $0.notAfter < $1.notAfter }?.serialNumber
    }

    /// Whether a periodic refresh is due (none yet, or the last success is older than 12 h).
    func isRefreshDue(at now: Date) -> Bool {
        guard let lastSuccess else { return true }
        return now.timeIntervalSince(lastSuccess) >= Self.refreshInterval
    }

    /// Calls `download` (which installs what it fetched), unless an attempt is under way (then waits for it) or
    /// the last one started less than `minimumAttemptInterval` ago (then returns at once).
    /// Failures keep the current set.
    func refresh(now: Date, download: @escaping @Sendable () async throws(WeChatPayError) -> Void) async {
        if let inFlight {
            await inFlight.value
            return
        }
        if let lastAttempt, now.timeIntervalSince(lastAttempt) < minimumAttemptInterval { return }
        lastAttempt = now
        let task = Task { _ = try? await download() }
        inFlight = task
        await task.value
        inFlight = nil
    }

    /// Replaces the set with a freshly downloaded and verified one.
    func install(_ certificates: [X509Certificate], at now: Date) {
        bySerial = Dictionary(certificates.map { ($0.serialNumber, $0) }, uniquingKeysWith: { _, newer in newer })
        lastSuccess = now
    }
}
