import AuthInfoDaemon
import FoundationEssentials
import Glibc
import WeChatPay
import WeChatPaySimulator
import SystemCalls

/// `authinfod demo`: the whole story against the built-in simulator, in a temporary folder, with
/// no config, credentials or root: first fill, a scheduled refresh, an outage during which every
/// device stays served, and recovery. Exits 0 by itself in well under two minutes.
enum Demo {
    static let mchid = "1900000109"
    static let serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    static let deadline = Date().addingTimeInterval(110)

    struct Failure: Error {
        let message: String
    }

    static func run(_ arguments: [String]) async throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "demo", valued: ["devices"])
        guard options.positionals.isEmpty else { throw UsageError("demo: unexpected argument \(options.positionals[0])", command: "demo") }
        let count = Int(options.value("devices") ?? "5") ?? 0
        guard (1...200).contains(count) else { throw UsageError("demo: --devices must be a number from 1 to 200", command: "demo") }
        do {
            try story(devices: count)
            return .success
        } catch let failure as Failure {
            return .failure("demo: \(failure.message)")
        } catch {
            return .failure("demo: \(error)")
        }
    }

    /// Prints a narration line at once (one write, unbuffered), so it interleaves in order with the log.
    static func say(_ text: String) {
        StandardStream.output.write(text + "\n")
    }

    static func story(devices count: Int) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        say("authinfod demo: a simulated WeChat Pay gateway on loopback and \(count) face-pay devices, in \(directory)\n")

        let merchantKey = try RSAPrivateKey(generatingBits: 2048)
        let gateway = try WeChatPaySimulator(merchant: .init(mchid: mchid, serialNumber: serial, publicKey: merchantKey.publicKey()))
        gateway.expiresIn = 30
        try write(directory + "/apiclient_key.pem", merchantKey.pkcs8PEM(), mode: 0o600)
        try write(directory + "/pub_key.pem", gateway.credentials.publicKeyPEM(), mode: 0o644)
        let devices = (1...count).map { CFormat.string("dev-%04ld", $0) }
        let config = """
        {
          "merchant": {"mchid": "\(mchid)", "serial_no": "\(serial)", "private_key_file": "apiclient_key.pem",
                       "wechatpay_public_key_id": "\(gateway.credentials.publicKeyID)", "wechatpay_public_key_file": "pub_key.pem"},
          "api": {"base_url": "\(gateway.baseURL.absoluteString)", "timeout_seconds": 2},
          "refresh": {"interval_seconds": 10, "authinfo_ttl_seconds": 30, "jitter_fraction": 0.1,
                      "backoff_min_seconds": 1, "backoff_max_seconds": 4, "max_requests_per_second": 10},
          "storage": {"database": "authinfo.db", "publish_dir": "devices"},
          "listen": {"unix_socket": null},
          "device_defaults": {"sp_appid": "wx8888888888888888", "sub_mchid": "1900000999", "organization_id": "canteen-1"},
          "devices": [\(devices.map { "{\"device_id\": \"\($0)\", \"raw_data\": \"RAW-\($0)\"}" }.joined(separator: ", "))]
        }
        """
        try write(directory + "/authinfod.json", config, mode: 0o640)
        let (configuration, credentials) = try ConfigLoader.loadWithSecrets(path: directory + "/authinfod.json")
        say("Config: authinfo lives 30 s; refresh every 10 s ±10%; backoff 1–4 s; at most 10 requests/s.")
        say("The daemon's own log lines (logfmt, on stderr) are interleaved below.\n")

        let daemon = Daemon(configuration: configuration, credentials: credentials, logger: Logger(level: .info))
        try daemon.start()
        defer { daemon.stop() }

        say("== 1. First fill: every device gets its authinfo")
        try wait("every device to be filled") { daemon.statusReport().count(.fresh) == count }
        table(daemon)
        let sample = directory + "/devices/" + devices[0] + ".json"
        say("\nA device reads \(sample) (mode 0640, replaced atomically):")
        say("  " + masked(try String(contentsOfFile: sample, encoding: .utf8)) + "\n")

        say("== 2. A scheduled refresh, before expiry")
        let before = daemon.refreshCount("success")
        try wait("a scheduled refresh") { (daemon.refreshCount("success")) >= before + count }
        table(daemon)

        say("\n== 3. Outage: the gateway goes down (connections refused)")
        gateway.fault = .down
        let outageStart = Date()
        let attemptsBefore = daemon.refreshCount("failure")
        for step in 1...3 {
            sleep(5)
            let served = servedFiles(directory + "/devices", devices)
            say("\n-- \(step * 5) s into the outage: \(served)/\(count) devices still read a valid authinfo from their file")
            table(daemon)
            guard served == count else { throw Failure(message: "a device lost its authinfo during a short outage") }
        }
        let attempts = (daemon.refreshCount("failure")) - attemptsBefore
        say("\nDuring \(Int(Date().timeIntervalSince(outageStart))) s of outage the daemon made \(attempts) attempts for \(count) devices: probes with backoff (1–4 s), not one request per device.")

        say("\n== 4. Recovery: the gateway is back")
        gateway.fault = .none
        let recoveryStart = Date()
        try wait("every device to be refreshed after the outage") {
            let report = daemon.statusReport()
            return report.count(.fresh) == count && report.devices.allSatisfy { $0.consecutiveFailures == 0 }
        }
        say("All \(count) devices fresh again \(CFormat.string("%.1f", Date().timeIntervalSince(recoveryStart))) s after the gateway came back.")
        table(daemon)
        say("\nDemo finished: every device was served throughout. Try `make test`, then see the README to run it for real.")
    }

    static func table(_ daemon: Daemon) {
        say(daemon.statusReport().table())
    }

    /// How many devices' files hold an unexpired authinfo right now.
    static func servedFiles(_ folder: String, _ devices: [String]) -> Int {
        let now = Date().timeIntervalSince1970
        return devices.filter { id in
            guard let data = FileManager.default.contents(atPath: "\(folder)/\(id).json"),
                  case .number(let expiresAt)? = (try? JSONParser.parse(Array(data)))?[member: "expires_at"] else { return false }
            return expiresAt > now
        }.count
    }

    /// The document with its authinfo shortened: credentials are not for printing.
    static func masked(_ document: String) -> String {
        let marker = "\"authinfo\":\""
        guard let found = document.indices.first(where: { document[$0...].hasPrefix(marker) }) else { return document }
        let start = document.index(found, offsetBy: marker.count)
        guard let end = document[start...].firstIndex(of: "\"") else { return document }
        return String(document[..<start]) + document[start..<end].prefix(14) + "…" + document[end...]
    }

    static func wait(_ what: String, _ condition: () -> Bool) throws {
        while !condition() {
            guard Date() < deadline else { throw Failure(message: "timed out waiting for \(what)") }
            usleep(100_000)
        }
    }

    static func write(_ path: String, _ text: String, mode: mode_t) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    static func makeTemporaryDirectory() throws -> String {
        let temporary = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array(PathText.resolve("authinfod-demo-XXXXXX", from: temporary).utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Failure(message: "cannot create a temporary folder: \(SystemError.last("mkdtemp").reason)")
        }
        return String(cString: created)
    }
}
