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

    @Test func unitScoresAtMostOnePointTwoInSystemdAnalyzeSecurity() throws {
        let result = try run(["security", "--offline=true", Self.unit])
        let line = try #require(result.output.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(result.output)")
        let score = try #require(Double(line.split(separator: ":").last!.split(separator: " ").first!))
        #expect(score <= 1.2, "\(line)")
    }

    /// What the unit's filter does to the daemon without a system manager: setpriority fails
    /// with EPERM (strace injects it, as SystemCallFilter would), with the unit's environment.
    /// Through a start, a reload and a stop, nothing may reach the journal but the daemon's own
    /// log lines: no connection to syslog (/dev/log, where libdispatch reports the refused
    /// scheduling hint) and no stderr line that is not logfmt.
    @Test func nothingButTheDaemonsLogUnderTheUnitsSyscallFilter() throws {
        let unit = try String(contentsOfFile: Self.unit, encoding: .utf8)
        var environment: [String: String] = [:]
        for line in unit.split(separator: "\n") where line.hasPrefix("Environment=") {
            let assignment = line.dropFirst("Environment=".count).split(separator: "=", maxSplits: 1)
            environment[String(assignment[0])] = String(assignment[1])
        }
        #expect(environment["SWIFT_BACKTRACE"] == "enable=no")
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 2))
        let trace = site.directory.file("strace.txt")
        let daemon = try site.start(environment: environment, launcher: [
            "/usr/bin/strace", "-f", "-qq", "-o", trace, "-e", "trace=connect,setpriority", "-e", "signal=none",
            "-e", "inject=setpriority:error=EPERM",
        ])
        defer { _ = daemon.terminate() }
        daemon.wait(20, "both devices published") { site.allPublished(2) }
        // The daemon is strace's child; signals go to it (strace would only detach).
        let strace = daemon.process.processIdentifier
        let children = try String(contentsOfFile: "/proc/\(strace)/task/\(strace)/children", encoding: .utf8)
        let pid = try #require(children.split(separator: " ").first.flatMap { Int32($0) }, "strace has no child")
        kill(pid, SIGHUP)
        daemon.wait(10, "the reload") { daemon.log.contains("event=reload") }
        kill(pid, SIGTERM)
        daemon.process.waitUntilExit()
        #expect(daemon.process.terminationStatus == 0, "strace exits with the daemon's status")
        let calls = try String(contentsOfFile: trace, encoding: .utf8)
        #expect(calls.contains("setpriority(") && calls.contains("EPERM"), "the scheduling hint was tried and refused: \(calls.prefix(500))")
        let syslog = calls.split(separator: "\n").filter { $0.contains("/dev/log") }
        #expect(syslog.isEmpty, "something wrote to syslog: \(syslog.prefix(3))")
        let foreign = daemon.log.split(separator: "\n").filter { !$0.hasPrefix("ts=") }
        #expect(foreign.isEmpty, "lines in the log that are not the daemon's: \(foreign.prefix(5))")
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
