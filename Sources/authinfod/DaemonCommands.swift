import AuthInfoDaemon
import CLinux
import Dispatch
import FoundationEssentials
import SystemCalls
import Glibc
import Synchronization
import WeChatPay

extension Commands {
    /// Loads the config and the merchant credentials, or says in one line what is wrong.
    static func loadConfiguration(_ path: String?) -> Result<(Configuration, MerchantCredentials), CommandResult> {
        do {
            return .success(try ConfigLoader.loadWithSecrets(path: ConfigLoader.path(explicit: path)))
        } catch {
            return .failure(.failure("invalid configuration: \(error)"))
        }
    }

    /// `run`: the daemon in the foreground until SIGTERM or SIGINT (what systemd starts).
    static func runDaemon(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "run", valued: ["config"])
        guard options.positionals.isEmpty else { throw UsageError("run: unexpected argument \(options.positionals[0])", command: "run") }
        // Signals first: a SIGTERM during start-up must still stop cleanly with exit 0. Stops on
        // a queue of their own, so a reload in progress never delays one.
        let control = DaemonControl()
        let stopRequested = DispatchSemaphore(value: 0)
        let stopSignals = DispatchQueue(label: "authinfod.stop-signals"), otherSignals = DispatchQueue(label: "authinfod.signals")
        var sources: [DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT, SIGUSR1, SIGHUP] {
            signal(number, SIG_IGN)
            let stops = number == SIGTERM || number == SIGINT
            let source = DispatchSource.makeSignalSource(signal: number, queue: stops ? stopSignals : otherSignals)
            source.setEventHandler { if stops { stopRequested.signal() } else { control.handle(number) } }
            source.resume()
            sources.append(source)
        }
        let configuration: Configuration, credentials: MerchantCredentials
        switch loadConfiguration(options.value("config")) {
        case .success(let loaded): (configuration, credentials) = loaded
        case .failure(let result): return result
        }
        // Descriptors: the soft limit up to the hard one (systemd's LimitNOFILE=, else the
        // shell's), so LAN clients run out of the daemon's patience before it runs out of files.
        var files = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        }
        // A peer that vanished makes a write fail with EPIPE, an error each connection handles;
        // by default it would be SIGPIPE, which ends the process (OpenSSL writes with write(2),
        // where our own sends pass MSG_NOSIGNAL). Hooks start with every signal at its default.
        signal(SIGPIPE, SIG_IGN)
        // Each gateway exchange runs on a thread of its own, and glibc would give many of them a
        // malloc arena each; two arenas keep the resident size down at no measurable cost.
        mallopt(M_ARENA_MAX, 2)
        let logger = Logger(level: configuration.log.level)
        let daemon = Daemon(configuration: configuration, credentials: credentials, logger: logger)
        control.attach(daemon)
        do {
            try daemon.start()
        } catch {
            logger.error("start_failed", ["error": error.description])
            return .failure("cannot start: \(error)")
        }
        withExtendedLifetime(sources) { stopRequested.wait() }
        // The stop is bounded by the daemon; this bound is the last resort, under systemd's
        // TimeoutStopSec. _exit skips global destructors, which could race with network threads
        // still winding down.
        let stopped = DispatchSemaphore(value: 0)
        DetachedThread.start {
            daemon.stop()
            stopped.signal()
        }
        if stopped.wait(timeout: .now() + 4.5) == .timedOut {
            logger.warning("stop_timeout", ["seconds": 4.5, "hint": "exiting without waiting further; the cache holds every completed refresh"])
        }
        _exit(0)
    }

    /// Loads the config alone, or the one-line failure. `checkingSecrets: false` for commands
    /// that need no keys (status, get, refresh), so members of the authinfod group can run them.
    static func loadConfigurationOnly(_ path: String?, checkingSecrets: Bool = false) -> Result<Configuration, CommandResult> {
        do {
            return .success(try ConfigLoader.load(path: ConfigLoader.path(explicit: path), checkingSecrets: checkingSecrets))
        } catch {
            return .failure(.failure("invalid configuration: \(error)"))
        }
    }

    /// Asks the running daemon on its Unix socket; nil when none answers (so the caller may read
    /// the cache instead), a failure when one answered badly.
    static func askDaemon(_ configuration: Configuration, _ method: String, _ path: String) -> Result<UnixSocketClient.Response, UnixSocketClient.Failure>? {
        guard let socket = configuration.listen.unixSocket else { return nil }
        do {
            return .success(try UnixSocketClient.request(socket: socket, method: method, path: path))
        } catch {
            if case .notRunning = error { return nil }
            return .failure(error)
        }
    }

    /// `status`: every device's state from the running daemon, else from the cache (and it says so).
    static func status(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "status", valued: ["config"], switches: ["json"])
        guard options.positionals.isEmpty else { throw UsageError("status: unexpected argument \(options.positionals[0])", command: "status") }
        let configuration: Configuration
        switch loadConfigurationOnly(options.value("config")) {
        case .success(let loaded): configuration = loaded
        case .failure(let result): return result
        }
        var report: StatusReport
        switch askDaemon(configuration, "GET", "/v1/status") {
        case .success(let response)? where response.status == 200:
            guard let live = try? StatusReport(json: response.body) else { return .failure("status: the daemon's answer is not a status document") }
            report = live
        case .success(let response)?:
            return .failure("status: \(answered(response.status))")
        case .failure(let error)?:
            return .failure("status: \(error)")
        case nil:
            switch cachedStatus(configuration) {
            case .success(let cached): report = cached
            case .failure(let result): return result
            }
        }
        print(options.flag("json") ? String(decoding: report.json(), as: UTF8.self) : report.table())
        return .success
    }

    static func cachedStatus(_ configuration: Configuration) -> Result<StatusReport, CommandResult> {
        let now = Date().timeIntervalSince1970
        var records: [String: DeviceRecord] = [:]
        var note = "read from the cache \(configuration.storage.database)"
        if let socket = configuration.listen.unixSocket { note += "; no daemon answered on \(socket)" }
        if FileManager.default.fileExists(atPath: configuration.storage.database) {
            do {
                records = try AuthInfoStore(path: configuration.storage.database, readOnly: true).loadAll()
            } catch {
                return .failure(.failure("status: \(error)"))
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
        return .success(report)
    }

    /// `get DEVICE_ID`: the authinfo alone, from the daemon or else the cache; exit 1 when
    /// unknown or without value, 3 when expired.
    static func get(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "get", valued: ["config"])
        guard options.positionals.count == 1 else { throw UsageError("get: exactly one DEVICE_ID is required", command: "get") }
        let id = options.positionals[0]
        let configuration: Configuration
        switch loadConfigurationOnly(options.value("config")) {
        case .success(let loaded): configuration = loaded
        case .failure(let result): return result
        }
        guard configuration.devices.contains(where: { $0.id == id }) else {
            return .failure("get: unknown device \"\(id)\" (not in \(configuration.file))")
        }
        let record: DeviceRecord?
        switch askDaemon(configuration, "GET", "/v1/devices/\(id)/authinfo") {
        case .success(let response)? where response.status == 200:
            guard case .object(let members)? = try? JSONParser.parse(response.body),
                  case .string(let value)? = members.first(where: { $0.key == "authinfo" })?.value,
                  case .string(let state)? = members.first(where: { $0.key == "state" })?.value else {
                return .failure("get: the daemon's answer is not an authinfo document")
            }
            if state == "expired" { return .exit(3, "get: the authinfo of device \(id) has expired") }
            print(value)
            return .success
        case .success(let response)? where response.status == 503 || response.status == 404:
            record = nil
        case .success(let response)?:
            return .failure("get: \(answered(response.status))")
        case .failure(let error)?:
            return .failure("get: \(error)")
        case nil:
            do {
                record = FileManager.default.fileExists(atPath: configuration.storage.database)
                    ? try AuthInfoStore(path: configuration.storage.database, readOnly: true).loadAll()[id] : nil
            } catch {
                return .failure("get: \(error)")
            }
        }
        guard let record, let authinfo = record.authinfo else {
            let lastError = record?.lastError.map { " (last error \($0.code))" } ?? ""
            return .failure("get: device \(id) has no authinfo yet\(lastError); see 'authinfod status'")
        }
        guard record.isValid(at: Date().timeIntervalSince1970) else {
            return .exit(3, "get: the authinfo of device \(id) expired \(StatusReport.duration(Date().timeIntervalSince1970 - (record.expiresAt ?? 0))) ago")
        }
        print(authinfo)
        return .success
    }

    /// `reload`: asks the running daemon to re-read its config now and waits for the outcome:
    /// exit 0 when applied, 1 with the reason when refused (the running config is kept).
    static func reload(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "reload", valued: ["config"])
        guard options.positionals.isEmpty else { throw UsageError("reload: unexpected argument \(options.positionals[0])", command: "reload") }
        let configuration: Configuration
        switch loadConfigurationOnly(options.value("config")) {
        case .success(let loaded): configuration = loaded
        case .failure(.failure(let message)): return .failure("\(message); nothing was sent: the running daemon keeps its configuration")
        case .failure(let result): return result
        }
        guard let socket = configuration.listen.unixSocket else {
            return .failure("reload: listen.unix_socket is off in \(configuration.file); send SIGHUP instead (systemctl kill -s HUP authinfod)")
        }
        do {
            let response = try UnixSocketClient.request(socket: socket, method: "POST", path: "/v1/reload", timeout: 60)
            switch response.status {
            case 200:
                print("reload applied")
                return .success
            case 409:
                let reason = (try? JSONParser.parse(response.body)).flatMap { value -> String? in
                    guard case .object(let members) = value, case .string(let reason)? = members.first(where: { $0.key == "reason" })?.value else { return nil }
                    return reason
                } ?? "refused"
                return .failure("reload refused, the running configuration is kept: \(reason)")
            default:
                return .failure("reload: \(answered(response.status))")
            }
        } catch {
            if case .notRunning = error { return .failure("reload: \(error); is authinfod running? (systemctl status authinfod)") }
            return .failure("reload: \(error)")
        }
    }

    /// What an unexpected answer from the daemon means, for the command's error line.
    static func answered(_ status: Int) -> String {
        guard status == 403 else { return "the daemon answered HTTP \(status)" }
        return "the daemon refused (HTTP 403): uid \(getuid()) is not an admin on its socket; run this as root or as the service user, "
            + "or grant this user in listen.unix_clients ({\"user\": \"NAME\", \"admin\": true})"
    }

    /// `refresh (DEVICE_ID... | --all)`: asks the running daemon to refresh now.
    static func refresh(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "refresh", valued: ["config"], switches: ["all"])
        guard options.flag("all") != !options.positionals.isEmpty else {
            throw UsageError("refresh: name DEVICE_IDs or --all (not both)", command: "refresh")
        }
        let configuration: Configuration
        switch loadConfigurationOnly(options.value("config")) {
        case .success(let loaded): configuration = loaded
        case .failure(let result): return result
        }
        let known = Set(configuration.devices.map(\.id))
        if let unknown = options.positionals.first(where: { !known.contains($0) }) {
            return .failure("refresh: unknown device \"\(unknown)\" (not in \(configuration.file))")
        }
        let ids = options.flag("all") ? configuration.devices.map(\.id) : options.positionals
        guard let socket = configuration.listen.unixSocket else {
            return .failure("refresh: listen.unix_socket is off in \(configuration.file), so there is no way to reach the daemon")
        }
        for id in ids {
            do {
                let response = try UnixSocketClient.request(socket: socket, method: "POST", path: "/v1/devices/\(id)/refresh")
                guard response.status == 202 else { return .failure("refresh: \(answered(response.status)) for \(id)") }
            } catch {
                if case .notRunning = error {
                    return .failure("refresh: \(error); is authinfod running? (systemctl status authinfod)")
                }
                return .failure("refresh: \(error)")
            }
        }
        print("refresh requested for \(ids.count) device\(ids.count == 1 ? "" : "s"); follow it with 'authinfod status'")
        return .success
    }
}

/// Routes SIGUSR1 and SIGHUP to the daemon once it exists.
final class DaemonControl: Sendable {
    private let attached = Mutex<Daemon?>(nil)

    func attach(_ daemon: Daemon) {
        attached.withLock { $0 = daemon }
    }

    /// SIGUSR1 (summary) and SIGHUP (reload of the file the daemon runs with); SIGTERM and
    /// SIGINT are handled by `runDaemon`.
    func handle(_ number: Int32) {
        guard let daemon = attached.withLock({ $0 }) else { return }
        if number == SIGUSR1 { return daemon.logSummary() }
        // An invalid new config is logged and the running one kept.
        daemon.reloadConfigFile()
    }
}
