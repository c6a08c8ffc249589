import AuthInfoDaemon
import Dispatch
import Foundation
import WeChatPay

extension Commands {
    /// Loads the config and the merchant credentials, or says in one line what is wrong.
    static func loadConfiguration(_ path: String?) -> Result<(Configuration, MerchantCredentials), CommandResult> {
        do {
            let configuration = try ConfigLoader.load(path: ConfigLoader.path(explicit: path))
            let credentials = try MerchantCredentials.load(configuration.merchant, file: configuration.file)
            return .success((configuration, credentials))
        } catch {
            return .failure(.failure("invalid configuration: \(error)"))
        }
    }

    /// `run`: the daemon in the foreground until SIGTERM or SIGINT (what systemd starts).
    static func runDaemon(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "run", valued: ["config"])
        guard options.positionals.isEmpty else { throw UsageError("run: unexpected argument \(options.positionals[0])", command: "run") }
        // Signals first: a SIGTERM during start-up must still stop cleanly with exit 0.
        let control = DaemonControl()
        let signals = DispatchQueue(label: "authinfod.signals")
        var sources: [DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT, SIGUSR1, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: signals)
            source.setEventHandler { control.handle(number) }
            source.resume()
            sources.append(source)
        }
        let configuration: Configuration, credentials: MerchantCredentials
        switch loadConfiguration(options.value("config")) {
        case .success(let loaded): (configuration, credentials) = loaded
        case .failure(let result): return result
        }
        let logger = Logger(level: configuration.log.level)
        let daemon = Daemon(configuration: configuration, credentials: credentials, logger: logger)
        control.attach(daemon, logger: logger)
        do {
            try daemon.start()
        } catch {
            logger.error("start_failed", ["error": error.description])
            return .failure("cannot start: \(error)")
        }
        withExtendedLifetime(sources) { () -> Never in
            while true { pause() }
        }
    }

    /// `status`: every device's state from the cache (the running daemon's socket API comes later).
    static func status(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "status", valued: ["config"], switches: ["json"])
        guard options.positionals.isEmpty else { throw UsageError("status: unexpected argument \(options.positionals[0])", command: "status") }
        let configuration: Configuration
        do {
            configuration = try ConfigLoader.load(path: ConfigLoader.path(explicit: options.value("config")))
        } catch {
            return .failure("invalid configuration: \(error)")
        }
        let now = Date().timeIntervalSince1970
        var records: [String: DeviceRecord] = [:]
        var note = "read from the cache \(configuration.storage.database)"
        if FileManager.default.fileExists(atPath: configuration.storage.database) {
            do {
                records = try AuthInfoStore(path: configuration.storage.database, readOnly: true).loadAll()
            } catch {
                return .failure("status: \(error)")
            }
        } else {
            note = "no cache yet at \(configuration.storage.database) (has the daemon run?)"
        }
        let rows = configuration.devices.map { device in
            let record = records[device.id] ?? DeviceRecord(deviceID: device.id)
            return DeviceStatus(record, nextAttemptAt: record.nextAttemptAt, now: now)
        }
        var report = StatusReport(generatedAt: now, source: "cache", devices: rows)
        report.notes.append(note)
        if options.flag("json") {
            print(String(decoding: report.json(), as: UTF8.self))
        } else {
            print(report.table())
        }
        return .success
    }

    /// `get DEVICE_ID`: the cached authinfo alone; exit 1 when unknown or without value, 3 when expired.
    static func get(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "get", valued: ["config"])
        guard options.positionals.count == 1 else { throw UsageError("get: exactly one DEVICE_ID is required", command: "get") }
        let id = options.positionals[0]
        let configuration: Configuration
        do {
            configuration = try ConfigLoader.load(path: ConfigLoader.path(explicit: options.value("config")))
        } catch {
            return .failure("invalid configuration: \(error)")
        }
        guard configuration.devices.contains(where: { $0.id == id }) else {
            return .failure("get: unknown device \"\(id)\" (not in \(configuration.file))")
        }
        let record: DeviceRecord?
        do {
            record = FileManager.default.fileExists(atPath: configuration.storage.database)
                ? try AuthInfoStore(path: configuration.storage.database, readOnly: true).loadAll()[id] : nil
        } catch {
            return .failure("get: \(error)")
        }
        guard let record, let authinfo = record.authinfo else {
            return .failure("get: device \(id) has no authinfo yet" + (record?.lastError.map { " (last error \($0.code))" } ?? ""))
        }
        guard record.isValid(at: Date().timeIntervalSince1970) else {
            return .exit(3, "get: the authinfo of device \(id) expired \(StatusReport.duration(Date().timeIntervalSince1970 - (record.expiresAt ?? 0))) ago")
        }
        print(authinfo)
        return .success
    }
}

/// Routes signals to the daemon. Before the daemon exists (while the config loads) a stop
/// simply exits: nothing is open yet.
final class DaemonControl: @unchecked Sendable {
    private let lock = NSLock()
    private var daemon: Daemon?
    private var logger: Logger?

    func attach(_ daemon: Daemon, logger: Logger) {
        lock.withLock {
            self.daemon = daemon
            self.logger = logger
        }
    }

    func handle(_ number: Int32) {
        let (daemon, logger) = lock.withLock { (self.daemon, self.logger) }
        switch number {
        case SIGTERM, SIGINT:
            // stop() waits for the daemon's queue (a start in progress finishes first), closes
            // the cache with every completed refresh committed; _exit then skips global
            // destructors, which could race with network threads still winding down.
            daemon?.stop()
            _exit(0)
        case SIGUSR1:
            daemon?.logSummary()
        default:
            logger?.warning("reload", ["result": "ignored", "hint": "config reload on SIGHUP is not available in this build; restart the service to apply changes"])
        }
    }
}
