import Foundation
import HTTPServer
import Testing
import WeChatPay
import WeChatPaySimulator
@testable import AuthInfoDaemon

/// A temporary folder removed when the value is released.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    /// A new folder in `parent` (the system's temporary folder unless told).
    init(in parent: String = NSTemporaryDirectory()) throws {
        var template = Array(((parent as NSString).appendingPathComponent("authinfod-test-XXXXXX")).utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        path = String(cString: created)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` with `mode` and returns the path.
    @discardableResult
    func write(_ name: String, _ text: String, mode: mode_t = 0o600) throws -> String {
        let target = file(name)
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: target))
        chmod(target, mode)
        return target
    }
}

enum TestKeys {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("WeChatPayTests/Fixtures")
    /// The official documentation's test key, as the merchant key.
    static let merchantPEM: String = try! String(contentsOf: fixtures.appendingPathComponent("official-test-key.pem"), encoding: .utf8)
    static let merchantKey: RSAPrivateKey = try! RSAPrivateKey(pem: merchantPEM)
    static let gateway: SimulatorCredentials = try! SimulatorCredentials.generate()
}

/// A merchant site on disk (keys and config) and the simulator it talks to.
struct Site {
    static let mchid = "1900000109"
    static let serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"

    let directory: TemporaryDirectory
    let simulator: WeChatPaySimulator
    var configPath: String { directory.file("authinfod.json") }

    /// With `gatewayTLS`, the simulator speaks https only, with a certificate for localhost in
    /// `gateway-ca.pem` (what `api.ca_file` names).
    init(signingMode: SimulatorSigningMode = .publicKey, gatewayTLS: Bool = false) throws {
        directory = try TemporaryDirectory()
        let merchant = WeChatPaySimulator.Merchant(mchid: Self.mchid, serialNumber: Self.serial, publicKey: try TestKeys.merchantKey.publicKey())
        var tls: TLSServerContext?
        if gatewayTLS {
            let (certificate, key) = try TLSListenerTests.certificate(directory, "gateway-ca")
            tls = try Array(try String(contentsOfFile: key, encoding: .utf8).utf8).withUnsafeBytes { try TLSServerContext(certificateChainFile: certificate, privateKey: $0) }
        }
        simulator = try WeChatPaySimulator(merchant: merchant, credentials: TestKeys.gateway, signingMode: signingMode, tls: tls)
        try directory.write("apiclient_key.pem", TestKeys.merchantPEM)
        try directory.write("pub_key.pem", try TestKeys.gateway.publicKeyPEM(), mode: 0o644)
        try directory.write("apiv3.key", TestKeys.gateway.apiV3Key + "\n")
    }

    /// The merchant section for this site's keys.
    func merchant(mode: SimulatorSigningMode = .publicKey) -> [String: Any] {
        var merchant: [String: Any] = ["mchid": Self.mchid, "serial_no": Self.serial, "private_key_file": "apiclient_key.pem"]
        switch mode {
        case .publicKey:
            merchant["wechatpay_public_key_id"] = simulator.credentials.publicKeyID
            merchant["wechatpay_public_key_file"] = "pub_key.pem"
        case .platformCertificate:
            merchant["apiv3_key_file"] = "apiv3.key"
        }
        return merchant
    }

    /// A complete config for this site, with `devices` and any section overridden by `extra`.
    func config(devices: Int = 1, extra: [String: Any] = [:]) -> [String: Any] {
        var config: [String: Any] = [
            "merchant": merchant(),
            "api": ["base_url": simulator.baseURL.absoluteString, "timeout_seconds": 2],
            "storage": ["database": "state/authinfo.db", "publish_dir": "devices"],
            "listen": ["unix_socket": "authinfod.sock"],
            "device_defaults": ["sp_appid": "wx8888888888888888", "sub_mchid": "1900000999", "organization_id": "org-1"],
            "devices": (0..<devices).map { ["device_id": String(format: "dev-%04d", $0 + 1), "raw_data": "RAW-\($0 + 1)"] },
        ]
        for (key, value) in extra { config[key] = value }
        return config
    }

    func writeConfig(_ config: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try directory.write("authinfod.json", String(decoding: data, as: UTF8.self), mode: 0o640)
    }
}

/// What a run of the real `authinfod` binary printed and returned.
struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

enum Binary {
    /// The built `authinfod`: `$AUTHINFOD_BINARY`, else `.build/debug/authinfod` of this package.
    static let path: String = {
        if let path = ProcessInfo.processInfo.environment["AUTHINFOD_BINARY"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/authinfod").path
    }()

    /// Another product built beside `authinfod` (`authinfod-fuzz`, `authinfod-bench`).
    static func sibling(_ name: String) -> String {
        URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Runs the binary (or `executable`) to completion with `arguments` (and `environment`
    /// added), at most `timeout` seconds.
    static func run(_ arguments: [String], executable: String = path, environment: [String: String] = [:],
                    timeout: Double = 60) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["AUTHINFOD_CONFIG"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let group = DispatchGroup()
        nonisolated(unsafe) var stdout = Data(), stderr = Data()
        group.enter()
        DispatchQueue.global().async { stdout = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { stderr = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            Issue.record("\((executable as NSString).lastPathComponent) \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
        }
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                             stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// A seeded xorshift64* generator, so a randomized test replays identically.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

extension DeviceTable {
    /// A table of devices named `ids` (their settings alike): for tests of what is kept by device.
    static func named(_ ids: [String]) -> DeviceTable {
        DeviceTable(ids.map { Configuration.Device(id: $0, spAppID: "wx1", subAppID: nil, subMchID: "1", organizationID: "o", rawData: .inline("r")) })
    }
}
