import Foundation
import Testing

/// What operators install beside the binary (issue 17): the manual page, the Prometheus alert
/// rules and the Grafana dashboard, each checked against the real binary and its real metrics.
/// mandoc and promtool are required (make test installs them): a missing tool fails the test.
@Suite struct OperatorFilesTests {
    static let manPage = UnitFileTests.root.appendingPathComponent("systemd/authinfod.8").path
    static let rules = UnitFileTests.root.appendingPathComponent("config/prometheus").path
    static let dashboard = UnitFileTests.root.appendingPathComponent("config/grafana/authinfod.json").path

    /// The absolute path of `tool` (on PATH, or unpacked into .build-tools by make test), or a
    /// failure naming the package that provides it.
    static func tool(_ tool: String, package: String) throws -> String {
        let unpacked = UnitFileTests.root.appendingPathComponent(".build-tools").path
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") + [Substring(unpacked)] {
            let path = "\(folder)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        Issue.record("\(tool) is not installed: make test installs it (from Debian's \(package) package)")
        throw CancellationError()
    }

    @Test func theManualPageCoversEveryCommandAndOptionOfHelp() throws {
        let page = try String(contentsOfFile: Self.manPage, encoding: .utf8)
        var help = try Binary.run(["--help"]).stdout
        var commands = Set(help.matches(of: /authinfod ([a-z][a-z-]+)/).map { String($0.1) })
        if help.contains("| help COMMAND") { commands.insert("help") }
        #expect(commands.isSuperset(of: ["run", "check-config", "status", "get", "refresh", "reload", "exchange", "token", "demo", "help"]), "\(commands)")
        for command in commands.sorted() where command != "help" {
            help += try Binary.run(["help", command]).stdout
        }
        for command in commands.sorted() {
            #expect(page.contains(".Cm \(command)") || page.contains("Cm \(command) "), "authinfod(8) does not describe the command \(command)")
        }
        let options = Set(help.matches(of: /--([a-z][a-z-]+)/).map { String($0.1) })
        #expect(options.isSuperset(of: ["config", "json", "all", "raw-data-file", "raw-data", "out-user-id", "organization-id", "devices", "version", "help"]))
        for option in options.sorted() {
            #expect(page.contains("Fl -\(option)"), "authinfod(8) does not describe --\(option)")
        }
        #expect(page.contains("/etc/authinfod/authinfod.json"), "the default config path")
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "SIGNALS", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            #expect(page.contains(".Sh \(section)\n"), "no \(section) section")
        }
    }

    @Test func theManualPageIsLintClean() throws {
        let mandoc = try Self.tool("mandoc", package: "mandoc")
        // -W warning: warnings and errors; style notes about this machine's own manual database
        // (pages it lacks) are not the page's.
        let lint = try Binary.run(["-T", "lint", "-W", "warning", Self.manPage], executable: mandoc)
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "\(lint.stdout)\(lint.stderr)")
        let rendered = try Binary.run(["-T", "utf8", Self.manPage], executable: mandoc)
        #expect(rendered.status == 0 && rendered.stdout.contains("AUTHINFOD(8)") && rendered.stderr.isEmpty, "\(rendered.stderr)")
    }

    @Test func everyAlertRuleFiresAndStaysQuietInItsUnitTests() throws {
        let promtool = try Self.tool("promtool", package: "prometheus")
        let check = try Binary.run(["check", "rules", Self.rules + "/authinfod-rules.yml"], executable: promtool)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let test = try Binary.run(["test", "rules", Self.rules + "/authinfod-rules.test.yml"], executable: promtool)
        #expect(test.status == 0 && test.stdout.contains("SUCCESS"), "\(test.stdout)\(test.stderr)")
        // At least one firing and one quiet evaluation for every alert the rules define.
        let rules = try String(contentsOfFile: Self.rules + "/authinfod-rules.yml", encoding: .utf8)
        let tests = try String(contentsOfFile: Self.rules + "/authinfod-rules.test.yml", encoding: .utf8)
        let alerts = rules.matches(of: /- alert: (\w+)/).map { String($0.1) }
        #expect(alerts.count >= 10)
        for alert in alerts {
            let evaluations = tests.components(separatedBy: "alertname: \(alert)\n").dropFirst()
            #expect(evaluations.contains { $0.hasPrefix("        exp_alerts: []") }, "\(alert) has no test where it stays quiet")
            #expect(evaluations.contains { $0.hasPrefix("        exp_alerts:\n") }, "\(alert) has no test where it fires")
        }
    }

    @Test func theDashboardAndTheRulesQueryOnlyMetricsTheDaemonExports() throws {
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        let metrics = try api.unix("/metrics").body
        let exported = Set(metrics.matches(of: #/# TYPE (authinfod_\w+) /#).map { String($0.1) })
        #expect(exported.contains("authinfod_device_expires_at_seconds"))

        let promtool = try Self.tool("promtool", package: "prometheus")
        let scratch = api.site.directory.file("metrics.txt")
        try metrics.write(toFile: scratch, atomically: true, encoding: .utf8)
        let lint = try Binary.run(["-c", "\"$0\" check metrics < \"$1\"", promtool, scratch], executable: "/bin/sh")
        #expect(lint.status == 0, "promtool check metrics: \(lint.stdout)\(lint.stderr)")

        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.dashboard))) as? [String: Any]
        let panels = dashboard?["panels"] as? [[String: Any]] ?? []
        #expect(panels.count >= 8)
        let titles = panels.compactMap { $0["title"] as? String }.joined(separator: "|").lowercased()
        for topic in ["runway", "devices by state", "refreshes", "errors by code", "gateway latency", "clock offset", "open connections"] {
            #expect(titles.contains(topic), "the dashboard has no \(topic) panel")
        }
        let expressions = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(expressions.count >= panels.count)
        let rules = try String(contentsOfFile: Self.rules + "/authinfod-rules.yml", encoding: .utf8)
        for (source, text) in [("dashboard", expressions.joined(separator: "\n")), ("alert rules", rules)] {
            let queried = Set(text.matches(of: /authinfod_[a-z_]+/).map { name -> String in
                var name = String(name.0)
                for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) && !exported.contains(name) { name.removeLast(suffix.count) }
                return name
            })
            #expect(!queried.isEmpty)
            for name in queried.sorted() { #expect(exported.contains(name), "the \(source) queries \(name), which authinfod does not export") }
        }
    }
}
