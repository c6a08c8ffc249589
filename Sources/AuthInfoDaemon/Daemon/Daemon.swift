import Dispatch
import FoundationEssentials
import Synchronization
import WeChatPay
import SystemCalls

/// The running daemon: the composition root. It builds the parts — the `Refresher` (every
/// device's truth and the refresh loop) and the `SocketAPI` (listeners, clients, routes) —
/// starts them in order (open the cache → load → publish → listen → READY → schedule) and
/// stops them in reverse, within a bound. It holds no device state and no request logic.
public final class Daemon: Sendable {
    /// How long `stop` waits for the refresh loop before it gives up on it (the process exits
    /// anyway; every completed refresh is already committed).
    static let stopTimeout = 3.0

    private enum Phase { case created, running, stopped }

    private let refresher: Refresher
    private let api: SocketAPI
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let phase = Mutex(Phase.created)
    /// One reload at a time, never during start or stop.
    private let reloads = Mutex(())

    public init(configuration: Configuration, credentials: MerchantCredentials, logger: Logger, clock: DaemonClock = .system,
                notifier: SystemdNotifier = SystemdNotifier(), random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.notifier = notifier
        self.logger = logger
        refresher = Refresher(configuration: configuration, credentials: credentials, logger: logger, clock: clock,
                              notifier: notifier, random: random)
        api = SocketAPI(service: refresher, logger: logger)
        api.reloader.set { [weak self] in
            guard let self else { return .failure(DaemonError(description: "the daemon is stopping")) }
            return self.reloadConfigFile()
        }
    }

    /// Reads the config file the daemon runs with (and every secret it names) again and applies
    /// it; what SIGHUP and `authinfod reload` do. A config that does not load is refused, logged,
    /// and the running one kept.
    @discardableResult
    public func reloadConfigFile() -> Result<Void, DaemonError> {
        let file = refresher.currentConfiguration().file
        do {
            let (configuration, credentials) = try ConfigLoader.loadWithSecrets(path: file)
            return reload(configuration, credentials: credentials)
        } catch {
            logger.error("reload_refused", ["error": "invalid configuration: \(error)",
                                    "hint": "the running configuration is kept; fix the file and reload again"])
            return .failure(DaemonError(description: "invalid configuration: \(error)"))
        }
    }

    /// Opens the cache, republishes every valid value, listens, tells systemd READY=1 and starts
    /// refreshing. Returns once ready, before any network call. A part that cannot start stops
    /// the start with an error naming it, and whatever had started is stopped again.
    public func start() throws(DaemonError) {
        try reloads.withLock { _ throws(DaemonError) in
            let configuration = refresher.currentConfiguration()
            let valid: Int
            do throws(DaemonError) {
                valid = try refresher.open()
            } catch {
                // A start that failed half-way (the cache unreadable after the files began) may
                // have armed the storage repair: nothing of it may outlive the start.
                refresher.stop(timeout: Self.stopTimeout)
                throw error
            }
            do throws(DaemonError) {
                api.commit(try api.stage(configuration.listen))
            } catch {
                refresher.stop(timeout: Self.stopTimeout)
                throw error
            }
            phase.withLock { $0 = .running }
            let count = configuration.devices.count
            logger.info("ready", ["devices": count, "valid": valid, "due_now": count - valid])
            notifier.notify("READY=1\nSTATUS=\(refresher.statusSummary().line)")
            refresher.startScheduling()
        }
    }

    /// Stops in reverse order of start: no more refreshes (timers, hooks, the cache closed),
    /// then the listeners and every client connection. Bounded: a refresh loop that does not
    /// answer within `stopTimeout` is left behind. Safe to call more than once.
    public func stop() {
        let wasRunning = phase.withLock { phase -> Bool in
            defer { phase = .stopped }
            return phase != .stopped
        }
        guard wasRunning else { return }
        notifier.notify("STOPPING=1")
        if !refresher.stop(timeout: Self.stopTimeout) {
            logger.warning("stop_timeout", ["seconds": Self.stopTimeout,
                                            "hint": "the refresh loop did not stop in time; every completed refresh is already in the cache"])
        }
        api.shutdown()
    }

    /// Applies a new, already validated configuration (SIGHUP or `authinfod reload`). The new
    /// listeners are bound before anything changes; when one cannot be, the reload is refused
    /// and the running configuration stays whole. Tells systemd RELOADING=1 … READY=1 around it.
    @discardableResult
    public func reload(_ new: Configuration, credentials: MerchantCredentials) -> Result<Void, DaemonError> {
        reloads.withLock { _ in
            guard phase.withLock({ $0 }) == .running else { return .failure(DaemonError(description: "the daemon is not running")) }
            notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(MonotonicClock.microseconds())")
            defer { notifier.notify("READY=1\nSTATUS=\(refresher.statusSummary().line)") }
            let staged: SocketAPI.Staged
            do throws(DaemonError) {
                staged = try api.stage(new.listen)
            } catch {
                logger.error("reload_refused", ["error": error.description,
                                        "hint": "the running configuration is kept; fix the listen section and reload again"])
                return .failure(error)
            }
            let summary = refresher.apply(new, credentials: credentials)
            api.commit(staged)
            logger.info("reload", ["result": "applied", "devices": new.devices.count, "added": summary.added, "removed": summary.removed,
                                   "changed": summary.changed,
                                   "needs_restart": summary.needsRestart.isEmpty ? nil : summary.needsRestart.joined(separator: ",")])
            return .success(())
        }
    }

    /// Logs the summary line (devices by state, runway) now; what SIGUSR1 does.
    public func logSummary() { refresher.logSummary() }

    /// The live status of every configured device.
    public func statusReport() -> StatusReport { refresher.statusReport() }

    /// What `statusReport().summary` says, without a row per device.
    public func statusSummary() -> StatusSummary { refresher.statusSummary() }

    /// The document a device reads, with its state, or nil when it has no value.
    public func document(for id: String) -> (document: AuthInfoDocument, state: AuthInfoDocument.State)? { refresher.document(for: id) }

    /// Refreshes `ids` (all devices when nil) as soon as the rate allows.
    public func refreshNow(_ ids: [String]? = nil) { refresher.refreshNow(ids) }

    /// Completed refreshes with `result` ("success", "failure" or "rejected").
    public func refreshCount(_ result: String) -> Int { refresher.refreshCount(result) }

    /// The TCP port the LAN listener is bound to (the one picked, for port 0), or nil.
    public var tcpPort: UInt16? { api.tcpPort }
}
