import Foundation
import AuthInfoDaemon
import WeChatPay

/// Measures the real daemon process: it runs `authinfod` (beside this binary) against a
/// simulator child process, reading CPU and RSS from /proc.
enum DaemonBench {
    struct Gateway {
        let process: Process
        let port: String
        let keyID: String
    }

    /// What one run measured.
    struct Figures {
        let devices: Int
        let fillSeconds: Double
        /// Daemon CPU from `ready` to the last file, divided by the refreshes it logged.
        let cpuPerRefresh: Double
        /// The kernel's part of it (system time).
        let kernelPerRefresh: Double
        let rssAfterFillMB: Double
        /// RSS once the fill's burst is over (18 s of nothing due): the steady state.
        let rssIdleMB: Double
        /// The private (anonymous) part of it: heap, stacks; the rest is code and read-only
        /// pages mapped from files, which the page cache shares.
        let privateIdleMB: Double
        /// Voluntary and involuntary switches of every daemon thread in 10 s with nothing due.
        let idleContextSwitches: Int
        /// CPU share (0–1 of one core) over those 10 s.
        let idleCPU: Double
        /// Gateway connections the fill opened (`authinfod_gateway_connections_opened_total`).
        let connectionsOpened: Int
        let refreshes: Int
        let readySeconds: Double
        let allFilesSeconds: Double
        let restartRSSMB: Double
        /// The wechatpayv3 client's CPU per call against the same gateway, when measured.
        var pythonCPUPerCall: Double?
        /// `refresh-floor`'s CPU (and kernel part) per refresh against the same gateway, when measured.
        var floor: (cpu: Double, kernel: Double)?
        /// The sign reference measured just before and just after the fill, and around the
        /// floor's run (`signReference`), when one was given.
        var signAroundFill: SignBracket?
        var signAroundFloor: SignBracket?
        /// `publish-floor` writing the same number of files into a new folder right after the
        /// restart, when measured: wall seconds, and the threads it wrote on.
        var publishFloor: (seconds: Double, threads: Int)?
    }

    /// One RSA-2048 sign's cost measured just before and just after a CPU figure: on a shared VM
    /// the machine's speed drifts over a bench run, so a figure is held against the speed of the
    /// minutes it was measured in (the mean), and the drift is shown.
    struct SignBracket {
        let before: Double
        let after: Double
        var mean: Double { (before + after) / 2 }
    }

    /// Gateway requests in flight at once: the daemon's `refresh.max_concurrent_requests`, and
    /// `refresh-floor`'s connections.
    static let concurrentRequests = 16

    /// Fills `devices` devices, idles, then restarts with the gateway down and the publish dir
    /// wiped. With `pythonClient`, runs that script against the same gateway before stopping it;
    /// with `floorClient` (the `refresh-floor` binary), that one too. With `publishFloor` (the
    /// `publish-floor` binary), the restart's files are written again by it, as the limit of
    /// READY on this machine.
    /// With `signReference` (seconds per sign, e.g. a short `openssl speed`), that reference is
    /// measured right before and right after the fill, and around the floor's run.
    @discardableResult
    static func run(devices: Int, pythonClient: String? = nil, floorClient: String? = nil, publishFloor: String? = nil, tls: Bool = false,
                    quiet: Bool = false, signReference: (() throws -> Double)? = nil) throws -> Figures {
        let directory = NSTemporaryDirectory() + "/authinfod-daemon-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // BENCH_KEEP=1 keeps the folder (config, cache, logs) for profiling a restart by hand.
        let keep = ProcessInfo.processInfo.environment["BENCH_KEEP"] != nil
        defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }
        let merchantKey = try RSAPrivateKey(generatingBits: 2048)
        try merchantKey.publicKeyPEM().write(toFile: directory + "/merchant.pub", atomically: true, encoding: .utf8)
        try write(directory + "/apiclient_key.pem", merchantKey.pkcs8PEM(), mode: 0o600)
        let gateway = try startGateway(directory, tls: tls)
        // publish_dir lives on tmpfs in production (/run); use /dev/shm here to match.
        let publishDirectory = tmpfsFolder("authinfod-bench", else: directory + "/devices")
        defer { if !keep { try? FileManager.default.removeItem(atPath: publishDirectory) } }
        let ids = (1...devices).map { String(format: "dev-%06d", $0) }
        let config: [String: Any] = [
            "merchant": ["mchid": mchid, "serial_no": serial, "private_key_file": "apiclient_key.pem",
                         "wechatpay_public_key_id": gateway.keyID, "wechatpay_public_key_file": "pub_key.pem"],
            "api": tls ? ["base_url": "https://localhost:\(gateway.port)", "timeout_seconds": 5, "ca_file": "gateway-ca.pem"]
                       : ["base_url": "http://127.0.0.1:\(gateway.port)", "timeout_seconds": 5],
            "refresh": ["max_requests_per_second": 5000, "max_concurrent_requests": concurrentRequests],
            "storage": ["database": "authinfo.db", "publish_dir": publishDirectory],
            "listen": ["unix_socket": directory + "/authinfod.sock"],
            "device_defaults": ["sp_appid": "wx8888888888888888", "sub_mchid": "1900000999", "organization_id": "org-1"],
            "devices": ids.map { ["device_id": $0, "raw_data": "RAW-" + $0] },
        ]
        try write(directory + "/authinfod.json", String(decoding: JSONSerialization.data(withJSONObject: config), as: UTF8.self), mode: 0o640)
        let binary = daemonBinary()
        func say(_ text: String) { if !quiet { print(text) } }

        say("devices: \(devices); authinfod: \(binary); gateway: simulator in a separate process; publish_dir \(publishDirectory)")
        let signBeforeFill = try signReference?()
        var daemon = try startDaemon(binary, directory, log: "fill.log")
        var start = Date()
        try waitFor(log: directory + "/fill.log", contains: "event=ready", timeout: 60)
        let cpuAtReady = usage(daemon.processIdentifier).cpu, kernelAtReady = systemCPU(daemon.processIdentifier)
        let switchesAtReady = contextSwitches(daemon.processIdentifier), gatewayCPUAtReady = usage(gateway.process.processIdentifier).cpu
        let fill = try waitFor(files: devices, in: publishDirectory, timeout: 1800).timeIntervalSince(start)
        let (cpu, rss) = usage(daemon.processIdentifier)
        let fillSwitches = switches(from: switchesAtReady, to: contextSwitches(daemon.processIdentifier))
        let gatewayCPU = usage(gateway.process.processIdentifier).cpu - gatewayCPUAtReady
        let connections = gatewayConnectionsOpened(socket: directory + "/authinfod.sock")
        let fillLog = (try? String(contentsOfFile: directory + "/fill.log", encoding: .utf8)) ?? ""
        let refreshes = max(1, fillLog.components(separatedBy: "event=refreshed").count - 1)
        let cpuPerRefresh = (cpu - cpuAtReady) / Double(refreshes)
        let kernelPerRefresh = (systemCPU(daemon.processIdentifier) - kernelAtReady) / Double(refreshes)
        var signAroundFill: SignBracket?
        if let signBeforeFill, let after = try signReference?() {
            signAroundFill = SignBracket(before: signBeforeFill, after: after)
        }
        say(String(format: "first fill:         %.1f s, %.0f refreshes/s, %.3f ms daemon CPU per refresh, %.3f ms of it in the kernel (%d refreshes)",
                   fill, Double(devices) / fill, cpuPerRefresh * 1000, kernelPerRefresh * 1000, refreshes))
        // The simulator signs every answer: its CPU per answer in the same seconds moves with the
        // machine's speed, so comparing two builds by this ratio cancels most of a VM's drift.
        say(String(format: "same window: %.2f context switches per refresh; simulator %.3f ms CPU per answer, daemon/simulator %.3f",
                   Double(fillSwitches) / Double(refreshes), gatewayCPU * 1000 / Double(refreshes), (cpu - cpuAtReady) / max(gatewayCPU, 0.001)))
        say(String(format: "gateway connections opened: %d (%.1f per 1,000 refreshes)%@", connections, Double(connections) * 1000 / Double(refreshes),
                   tls ? ", each with a TLS handshake" : ""))
        say(String(format: "RSS, %d devices:   %.1f MB", devices, rss))
        Thread.sleep(forTimeInterval: 8)
        let switchesBefore = contextSwitches(daemon.processIdentifier), idleCPUBefore = scheduledSeconds(daemon.processIdentifier)
        Thread.sleep(forTimeInterval: 10)
        let idleSwitches = switches(from: switchesBefore, to: contextSwitches(daemon.processIdentifier))
        let idleCPU = seconds(from: idleCPUBefore, to: scheduledSeconds(daemon.processIdentifier)) / 10
        let idleRSS = usage(daemon.processIdentifier).rssMB, idlePrivate = privateMB(daemon.processIdentifier)
        say(String(format: "RSS after 18 s idle: %.1f MB (%.1f MB private: heap and stacks; the rest mapped from files)", idleRSS, idlePrivate))
        say(String(format: "idle, nothing due: %d context switches in 10 s, %.4f %% of a core", idleSwitches, idleCPU * 100))
        stop(daemon)

        var python: Double?
        if let pythonClient {
            python = try runPython(pythonClient, gateway: gateway, directory: directory)
            say(String(format: "wechatpayv3 (Python) client: %.2f ms CPU per call", (python ?? 0) * 1000))
        }
        var floor: (cpu: Double, kernel: Double)?
        var signAroundFloor: SignBracket?
        if let floorClient {
            let before = try signReference?()
            floor = try runFloor(floorClient, gateway: gateway, directory: directory, calls: min(devices, 5000))
            if let before, let after = try signReference?() { signAroundFloor = SignBracket(before: before, after: after) }
            say(String(format: "refresh-floor (C, one thread): %.3f ms CPU per refresh, %.3f ms of it in the kernel", (floor?.cpu ?? 0) * 1000, (floor?.kernel ?? 0) * 1000))
        }
        for (what, bracket) in [("fill", signAroundFill), ("floor", signAroundFloor)] {
            if let bracket { say(String(format: "sign reference around the %@: %.3f ms before, %.3f ms after", what, bracket.before * 1000, bracket.after * 1000)) }
        }

        gateway.process.terminate()
        gateway.process.waitUntilExit()
        try FileManager.default.removeItem(atPath: publishDirectory)
        // READY is timed as systemd sees it: the READY=1 datagram on the notify socket.
        var notify: NotifySocket? = try NotifySocket(path: directory + "/notify.sock")
        start = Date()
        daemon = try startDaemon(binary, directory, log: "restart.log", notifySocket: notify?.path)
        let ready = try notify!.waitForReady(timeout: 60)
        // Closed at once: nobody reads what follows, and a full queue would hold the daemon's
        // next notification back (a send to a closed socket fails, and the daemon goes on).
        notify = nil
        let readyAt = ready.timeIntervalSince(start)
        let allFiles = try waitFor(files: devices, in: publishDirectory, timeout: 60).timeIntervalSince(start)
        let (_, restartRSS) = usage(daemon.processIdentifier)
        say(String(format: "restart, gateway down, publish dir wiped: READY=1 after %.2f s, all %d files after %.2f s; RSS %.1f MB", readyAt, devices, allFiles, restartRSS))
        stop(daemon)
        var filesFloor: (seconds: Double, threads: Int)?
        if let publishFloor {
            // Under the same conditions as the restart: the files just written are deleted first.
            try FileManager.default.removeItem(atPath: publishDirectory)
            filesFloor = try runPublishFloor(publishFloor, files: devices, directory: directory)
            say(String(format: "publish-floor (C, %d threads): %d files in %.2f s", filesFloor?.threads ?? 0, devices, filesFloor?.seconds ?? 0))
        }
        return Figures(devices: devices, fillSeconds: fill, cpuPerRefresh: cpuPerRefresh, kernelPerRefresh: kernelPerRefresh, rssAfterFillMB: rss, rssIdleMB: idleRSS, privateIdleMB: idlePrivate, idleContextSwitches: idleSwitches,
                       idleCPU: idleCPU, connectionsOpened: connections, refreshes: refreshes, readySeconds: readyAt, allFilesSeconds: allFiles, restartRSSMB: restartRSS, pythonCPUPerCall: python, floor: floor,
                       signAroundFill: signAroundFill, signAroundFloor: signAroundFloor, publishFloor: filesFloor)
    }

    /// Context switches (voluntary and not) so far of each thread of `pid`, by thread id.
    static func contextSwitches(_ pid: Int32) -> [String: Int] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var result: [String: Int] = [:]
        for task in tasks {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)) ?? ""
            result[task] = status.split(separator: "\n").filter { $0.contains("ctxt_switches:") }
                .reduce(0) { $0 + (Int($1.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0) }
        }
        return result
    }

    /// Switches between two samples: each surviving thread's increase, plus every switch of the
    /// threads that appeared meanwhile (those that came and went unseen are missed; the idle
    /// window starts only after the fill's threads have wound down).
    static func switches(from before: [String: Int], to after: [String: Int]) -> Int {
        after.reduce(0) { $0 + $1.value - (before[$1.key] ?? 0) }
    }

    /// CPU seconds per call of the wechatpayv3 reference client against `gateway`.
    static func runPython(_ script: String, gateway: Gateway, directory: String) throws -> Double {
        let figures = try runReference("/usr/bin/env", ["python3", script, "http://127.0.0.1:\(gateway.port)", directory + "/apiclient_key.pem",
                                                         directory + "/pub_key.pem", gateway.keyID, "300"],
                                       failure: "the wechatpayv3 client failed (pip install wechatpayv3?)")
        guard figures.count == 1 else { throw BenchFailure(description: "the wechatpayv3 client printed \(figures.count) figures, not 1") }
        return figures[0]
    }

    /// CPU seconds (and kernel seconds) per refresh of `refresh-floor` against `gateway`, with as
    /// many requests in flight as the daemon's config allows, publishing into a folder on tmpfs
    /// and committing beside the daemon's cache, as the daemon does.
    static func runFloor(_ binary: String, gateway: Gateway, directory: String, calls: Int) throws -> (cpu: Double, kernel: Double) {
        let publish = tmpfsFolder("authinfod-floor", else: directory + "/floor")
        try FileManager.default.createDirectory(atPath: publish, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: publish) }
        let figures = try runReference(binary, [gateway.port, mchid, serial, directory + "/apiclient_key.pem", directory + "/pub_key.pem",
                                                String(calls), String(concurrentRequests), directory, publish],
                                       failure: "refresh-floor failed")
        guard figures.count == 2 else { throw BenchFailure(description: "refresh-floor printed \(figures.count) figures, not 2") }
        return (figures[0], figures[1])
    }

    /// Wall seconds for `publish-floor` to write `files` files into a new folder on tmpfs (where
    /// the daemon's publish_dir is in the bench), on as many threads as there are cores (at most
    /// 64), from its launch to its exit: timed as the daemon's READY is, from outside.
    static func runPublishFloor(_ binary: String, files: Int, directory: String) throws -> (seconds: Double, threads: Int) {
        let folder = tmpfsFolder("authinfod-publish-floor", else: directory + "/publish-floor")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let threads = min(ProcessInfo.processInfo.activeProcessorCount, 64)
        let start = Date()
        let figures = try runReference(binary, [folder, String(files), String(threads)], failure: "publish-floor failed")
        let seconds = Date().timeIntervalSince(start)
        guard figures.count == 3 else { throw BenchFailure(description: "publish-floor printed \(figures.count) figures, not 3") }
        return (seconds, threads)
    }

    /// Runs a reference client to its end and returns the numbers it printed; `failure` (with
    /// the end of its standard error) when it exits non-zero.
    static func runReference(_ executable: String, _ arguments: [String], failure: String) throws -> [Double] {
        try output(of: executable, arguments, failure: failure).split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
    }

    /// Runs a program to its end and returns what it printed; `failure` (with the end of its
    /// standard error) when it exits non-zero.
    static func output(of executable: String, _ arguments: [String], failure: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchFailure(description: "\(failure): \(errors.suffix(400))") }
        return text
    }

    /// `/dev/shm/{prefix}-{pid}` where there is a /dev/shm (tmpfs, as /run is in production),
    /// otherwise `fallback`.
    static func tmpfsFolder(_ prefix: String, else fallback: String) -> String {
        FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/\(prefix)-\(getpid())" : fallback
    }

    /// `authinfod_gateway_connections_opened_total` from the daemon's metrics (0 when unreadable).
    static func gatewayConnectionsOpened(socket: String) -> Int {
        guard let answer = try? UnixSocketClient.request(socket: socket, method: "GET", path: "/metrics") else { return 0 }
        let text = String(decoding: answer.body, as: UTF8.self)
        let line = text.split(separator: "\n").first { $0.hasPrefix("authinfod_gateway_connections_opened_total ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    static func startGateway(_ directory: String, tls: Bool = false) throws -> Gateway {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["simulator", "--merchant-key-file", directory + "/merchant.pub", "--out", directory + "/gateway"]
            + (tls ? ["--tls-ca", directory + "/gateway-ca.pem"] : [])
        try child.run()
        var lines: [String] = []
        for _ in 0..<200 where lines.count < 3 {
            usleep(50_000)
            lines = ((try? String(contentsOfFile: directory + "/gateway", encoding: .utf8)) ?? "").components(separatedBy: "\n")
        }
        try lines[2...].joined(separator: "\n").write(toFile: directory + "/pub_key.pem", atomically: true, encoding: .utf8)
        return Gateway(process: child, port: lines[0], keyID: lines[1])
    }

    static func startDaemon(_ binary: String, _ directory: String, log: String, notifySocket: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["run", "--config", directory + "/authinfod.json"]
        // As the unit starts it (systemd/authinfod.service): with the backtracer already off, the
        // daemon does not execute itself a second time to turn it off (about 15 ms of a start).
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        // The bench's own NOTIFY_SOCKET, if it runs under a service manager, is not the daemon's.
        environment["NOTIFY_SOCKET"] = notifySocket
        process.environment = environment
        _ = FileManager.default.createFile(atPath: directory + "/" + log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: directory + "/" + log)
        try process.run()
        return process
    }

    static func stop(_ process: Process) {
        process.terminate()
        process.waitUntilExit()
    }

    /// CPU seconds (user + system) and RSS in MB of a live process, from /proc.
    /// System (kernel) CPU seconds of process `pid`.
    static func systemCPU(_ pid: Int32) -> Double {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        return fields.count > 12 ? Double(fields[12])! / Double(sysconf(Int32(_SC_CLK_TCK))) : 0
    }

    /// RssAnon: the resident memory that is the process's alone.
    static func privateMB(_ pid: Int32) -> Double {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return (status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") }.flatMap { Double($0.split(separator: " ").dropFirst().first ?? "") } ?? 0) / 1024
    }

    /// Time each thread of `pid` has run so far, in seconds, by thread id, from the scheduler's
    /// own nanosecond count (`/proc/PID/task/TID/schedstat`): an idle daemon runs microseconds
    /// at a time, which the 10 ms ticks of `/proc/PID/stat` either miss or round to a whole tick.
    static func scheduledSeconds(_ pid: Int32) -> [String: Double] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var result: [String: Double] = [:]
        for task in tasks {
            let fields = ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8)) ?? "").split(separator: " ")
            if let nanoseconds = fields.first.flatMap({ Double($0) }) { result[task] = nanoseconds / 1e9 }
        }
        return result
    }

    /// What the threads alive at `after` ran since `before` (a thread started meanwhile counts
    /// whole; one that ended meanwhile is not seen).
    static func seconds(from before: [String: Double], to after: [String: Double]) -> Double {
        after.reduce(0) { $0 + $1.value - (before[$1.key] ?? 0) }
    }

    static func usage(_ pid: Int32) -> (cpu: Double, rssMB: Double) {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let cpu = fields.count > 12 ? (Double(fields[11])! + Double(fields[12])!) / ticks : 0
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
        return (cpu, rss / 1024)
    }

    /// Waits until `folder` holds `count` JSON files; returns when the listing that found them
    /// began (its own cost, ~0.1 s for 100,000 files, is the bench's, not the daemon's). Listing
    /// a large folder is not free, so the pause between listings grows with what a listing costs
    /// (the bench must not steal the CPU it measures).
    @discardableResult
    static func waitFor(files count: Int, in folder: String, timeout: Double) throws -> Date {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let started = processCPUSeconds()
            let listed = Date()
            if ((try? FileManager.default.contentsOfDirectory(atPath: folder))?.filter { $0.hasSuffix(".json") }.count ?? 0) >= count { return listed }
            usleep(useconds_t(max(0.005, (processCPUSeconds() - started) * 20) * 1e6))
        }
        throw BenchFailure(description: "\(folder) did not reach \(count) files in \(timeout) s")
    }

    @discardableResult
    static func waitFor(log path: String, contains text: String, timeout: Double) throws -> Date {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? String(contentsOfFile: path, encoding: .utf8))?.contains(text) == true { return Date() }
            usleep(5_000)
        }
        throw BenchFailure(description: "\(path) did not show \(text) in \(timeout) s")
    }

    static func write(_ path: String, _ text: String, mode: mode_t) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, mode)
    }

    struct BenchFailure: Error, CustomStringConvertible {
        let description: String
    }
}
