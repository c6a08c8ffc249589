import AuthInfoDaemon
import Foundation
import WeChatPay
import WeChatPaySimulator

/// `make soak`: the real daemon with many short-lived devices against an in-process simulator
/// that misbehaves at random, for minutes. Every second it checks that each device's file holds
/// a value the gateway issued to that device and has not expired; at the end the cache passes
/// `integrity_check` and holds a valid value for every device. Exits 1 when a check fails.
///
/// Faults are 2–4 s long with at least 20 s of healthy gateway between them. Refreshes come at
/// half the lifetime (±10 %), so the margin before expiry (at least 9 s of a 20 s lifetime) holds
/// a whole fault plus the longest backoff (2 s) with room to spare: a device that expires at all
/// is a failure. RSS is sampled every 10 s; "flat" means the last sample is within 10 % of the
/// sample after the first two minutes.
enum SoakBench {
    static let faults: [(String, SimulatorFault)] = [
        ("500", .serverError), ("429", .rateLimited), ("slow (timeouts)", .slow(seconds: 2.5)), ("forged", .forgedSignature),
        ("SIGNTEST", .signTest), ("garbage", .garbageBody), ("unsigned", .missingSignature), ("down", .down),
    ]

    static func run(devices: Int, lifetime: Int, minutes: Double, reloadEvery: Double = 60) throws {
        let directory = NSTemporaryDirectory() + "/authinfod-soak-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let merchantKey = try RSAPrivateKey(generatingBits: 2048)
        try DaemonBench.write(directory + "/apiclient_key.pem", merchantKey.pkcs8PEM(), mode: 0o600)
        let simulator = try WeChatPaySimulator(merchant: .init(mchid: mchid, serialNumber: serial, publicKey: try merchantKey.publicKey()),
                                               expiresIn: lifetime)
        try DaemonBench.write(directory + "/pub_key.pem", try simulator.credentials.publicKeyPEM(), mode: 0o644)
        let publishDirectory = DaemonBench.tmpfsFolder("authinfod-soak", else: directory + "/devices")
        defer { try? FileManager.default.removeItem(atPath: publishDirectory) }
        let ids = (1...devices).map { String(format: "soak-%05d", $0) }
        let interval = Double(lifetime) * 0.5
        let config: [String: Any] = [
            "merchant": ["mchid": mchid, "serial_no": serial, "private_key_file": "apiclient_key.pem",
                         "wechatpay_public_key_id": simulator.credentials.publicKeyID, "wechatpay_public_key_file": "pub_key.pem"],
            "api": ["base_url": simulator.baseURL.absoluteString, "timeout_seconds": 2],
            "refresh": ["interval_seconds": interval, "authinfo_ttl_seconds": lifetime, "jitter_fraction": 0.1,
                        "backoff_min_seconds": 0.5, "backoff_max_seconds": 2,
                        "max_requests_per_second": max(50, Double(devices) / interval * 4), "max_concurrent_requests": 16],
            "storage": ["database": "authinfo.db", "publish_dir": publishDirectory],
            "listen": ["unix_socket": "authinfod.sock"],
            "log": ["summary_interval_seconds": 60],
            "device_defaults": ["sp_appid": "wx8888888888888888", "sub_mchid": "1900000999", "organization_id": "org-1"],
            "devices": ids.map { ["device_id": $0, "raw_data": "RAW-" + $0] },
        ]
        let configPath = directory + "/authinfod.json"
        try DaemonBench.write(configPath, String(decoding: JSONSerialization.data(withJSONObject: config), as: UTF8.self), mode: 0o640)
        let binary = daemonBinary()

        print("soak: \(devices) devices, \(lifetime) s lifetime, refresh every \(Int(interval)) s ±10 %, \(minutes) min of random 2–4 s faults")
        let daemon = try DaemonBench.startDaemon(binary, directory, log: "soak.log")
        let fillStart = Date()
        try DaemonBench.waitFor(files: devices, in: publishDirectory, timeout: 120)
        print(String(format: "first fill: %.1f s", Date().timeIntervalSince(fillStart)))

        var random = SystemRandomNumberGenerator()
        let start = Date()
        let end = start.addingTimeInterval(minutes * 60)
        var nextFault = start.addingTimeInterval(Double.random(in: 20...40, using: &random))
        var faultEnds: Date?
        var nextReload = start.addingTimeInterval(reloadEvery)
        var faultCounts: [String: Int] = [:]
        var samples = 0, violations: [String] = [], rss: [(Double, Double)] = [], reloads = 0
        while Date() < end {
            let now = Date()
            if let ends = faultEnds, now >= ends {
                simulator.fault = .none
                faultEnds = nil
                nextFault = now.addingTimeInterval(Double.random(in: 20...40, using: &random))
            } else if faultEnds == nil, now >= nextFault {
                let (name, fault) = faults.randomElement(using: &random)!
                simulator.fault = fault
                faultCounts[name, default: 0] += 1
                faultEnds = now.addingTimeInterval(Double.random(in: 2...4, using: &random))
            }
            if now >= nextReload {
                kill(daemon.processIdentifier, SIGHUP)
                reloads += 1
                nextReload = now.addingTimeInterval(reloadEvery)
            }
            let wall = now.timeIntervalSince1970
            for id in ids {
                guard let data = FileManager.default.contents(atPath: "\(publishDirectory)/\(id).json"),
                      let document = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let value = document["authinfo"] as? String, let expiresAt = document["expires_at"] as? Double else {
                    violations.append(String(format: "%.0f s: %@ has no readable file", now.timeIntervalSince(start), id))
                    continue
                }
                if !simulator.didIssue(value, to: id) { violations.append("\(id) holds a value the gateway never issued to it") }
                if expiresAt < wall - 1 { violations.append(String(format: "%.0f s: %@ published past its expiry", now.timeIntervalSince(start), id)) }
            }
            samples += 1
            if samples % 10 == 1 { rss.append((now.timeIntervalSince(start), DaemonBench.usage(daemon.processIdentifier).rssMB)) }
            guard daemon.isRunning else {
                violations.append("the daemon exited with \(daemon.terminationStatus)")
                break
            }
            Thread.sleep(forTimeInterval: max(0, 1 - Date().timeIntervalSince(now)))
        }
        simulator.fault = .none
        let (cpu, finalRSS) = DaemonBench.usage(daemon.processIdentifier)
        daemon.terminate()
        daemon.waitUntilExit()
        if daemon.terminationStatus != 0 { violations.append("the daemon stopped with status \(daemon.terminationStatus)") }

        let log = (try? String(contentsOfFile: directory + "/soak.log", encoding: .utf8)) ?? ""
        let expired = log.components(separatedBy: "event=expired").count - 1
        if expired > 0 { violations.append("\(expired) expiries logged") }
        let store = try AuthInfoStore(path: directory + "/authinfo.db", readOnly: true)
        let integrity = try store.integrityCheck()
        if integrity != "ok" { violations.append("integrity_check: \(integrity)") }
        let records = try store.loadAll()
        let lost = ids.filter { id in !(records[id].flatMap { $0.authinfo }.map { simulator.didIssue($0, to: id) } ?? false) }
        if !lost.isEmpty { violations.append("\(lost.count) devices have no issued value in the cache") }

        let authinfoRequests = simulator.requests(path: WeChatPayClient.authInfoPath)
        let baseline = rss.first { $0.0 >= 120 }?.1 ?? rss.first?.1 ?? 0
        let growth = baseline > 0 ? (finalRSS - baseline) / baseline : 0
        if minutes >= 3, growth > 0.10 { violations.append(String(format: "RSS grew %.0f %% after the first two minutes", growth * 100)) }
        print("faults injected: " + faultCounts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ") + "; SIGHUP reloads: \(reloads)")
        print("gateway requests: \(authinfoRequests.count) authinfo, \(authinfoRequests.filter { $0.status == 200 }.count) answered 200")
        print("checks: \(samples) one-second sweeps of \(devices) files; \(violations.count) violations; expiries logged: \(expired)")
        print("cache: integrity_check \(integrity); \(records.count) records; devices without an issued value: \(lost.count)")
        print(String(format: "daemon: RSS %.1f MB after 2 min, %.1f MB at the end (%+.1f %%), max %.1f MB; CPU %.1f s",
                     baseline, finalRSS, growth * 100, rss.map(\.1).max() ?? finalRSS, cpu))
        print("RSS (MB) every minute: " + rss.filter { Int($0.0) % 60 < 10 }.map { String(format: "%.1f", $0.1) }.joined(separator: " "))
        for violation in violations.prefix(10) { print("  violation: \(violation)") }
        print(violations.isEmpty ? "soak: PASS" : "soak: FAIL (the daemon's log and cache are kept in \(directory))")
        // A failed soak keeps its folder (the daemon's log and cache) for a look.
        if !violations.isEmpty { exit(1) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
