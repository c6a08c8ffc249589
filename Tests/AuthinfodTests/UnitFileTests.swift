import AuthInfoDaemon
import Foundation
import Testing

@Suite struct UnitFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let unit = root.appendingPathComponent("systemd/authinfod.service").path

    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func unitScoresAtMostTwoInSystemdAnalyzeSecurity() throws {
        let result = try run(["security", "--offline=true", Self.unit])
        let line = try #require(result.output.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(result.output)")
        let score = try #require(Double(line.split(separator: ":").last!.split(separator: " ").first!))
        #expect(score <= 2.0, "\(line)")
    }

    @Test func unitVerifiesClean() throws {
        let directory = try TemporaryDirectory()
        let unit = try String(contentsOfFile: Self.unit, encoding: .utf8).replacingOccurrences(of: "/usr/local/bin/authinfod", with: Binary.path)
        let copy = try directory.write("authinfod.service", unit, mode: 0o644)
        let result = try run(["verify", copy])
        #expect(result.status == 0)
        #expect(result.output.isEmpty, "\(result.output)")
    }

    @Test func exampleConfigPathsLiveInTheUnitsDirectories() throws {
        let unit = try String(contentsOfFile: Self.unit, encoding: .utf8)
        #expect(unit.contains("StateDirectory=authinfod"))
        #expect(unit.contains("RuntimeDirectory=authinfod"))
        #expect(unit.contains("ConfigurationDirectory=authinfod"))
        #expect(unit.contains("--config /etc/authinfod/authinfod.json"))
        #expect(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("Restart=on-failure"))
        #expect(unit.contains("LoadCredential=apiclient_key.pem:"))
        // systemctl reload waits for the daemon's answer (and fails when the config is refused);
        // /bin/kill is not on every system.
        #expect(unit.contains("ExecReload=/usr/local/bin/authinfod reload --config /etc/authinfod/authinfod.json"))
        #expect(unit.contains("LimitCORE=0") && unit.contains("Environment=SWIFT_BACKTRACE=enable=no"))
        #expect(unit.contains("LimitNOFILE=65536"))
        let example = try String(contentsOf: Self.root.appendingPathComponent("config/authinfod.json"), encoding: .utf8)
        #expect(example.contains("\"database\": \"/var/lib/authinfod/"))
        #expect(example.contains("\"publish_dir\": \"/run/authinfod/"))
        #expect(example.contains("\"unix_socket\": \"/run/authinfod/"))
        #expect(example.contains("\"private_key_file\": \"apiclient_key.pem\""), "relative, so LoadCredential's copy is found first")
    }
}
