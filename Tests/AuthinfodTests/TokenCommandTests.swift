import Foundation
import Testing
import WeChatPaySimulator

@Suite struct TokenCommandTests {
    @Test func tokenCommandPrintsTheGatewayTokenAlone() throws {
        let site = try Site()
        try site.writeConfig(site.config())
        let result = try Binary.run(["token", "--config", site.configPath, "--out-user-id", "u", "--organization-id", "o"])
        #expect(result.status == 0, "\(result.stderr)")
        let token = result.stdout.trimmingCharacters(in: .newlines)
        #expect(token.hasPrefix("SIMTOKEN-"))
        #expect(!token.contains("\n"))
        #expect(site.simulator.requests(path: "/v3/offlinefacemch/tokens").map(\.status) == [200])
    }

    @Test func tokenCommandWorksInPlatformCertificateMode() throws {
        let site = try Site(signingMode: .platformCertificate)
        var config = site.config()
        config["merchant"] = site.merchant(mode: .platformCertificate)
        try site.writeConfig(config)
        let result = try Binary.run(["token", "--config", site.configPath, "--out-user-id", "u", "--organization-id", "o"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("SIMTOKEN-"))
    }

    @Test func forgedAnswerFailsNamingTheSignatureAndPrintsNoToken() throws {
        let site = try Site()
        try site.writeConfig(site.config())
        site.simulator.fault = .forgedSignature
        let result = try Binary.run(["token", "--config", site.configPath, "--out-user-id", "u", "--organization-id", "o"])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("signature does not verify"))
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
    }

    @Test func gatewayDownIsOneLineNamingTheProblem() throws {
        let site = try Site()
        try site.writeConfig(site.config())
        site.simulator.fault = .down
        let result = try Binary.run(["token", "--config", site.configPath, "--out-user-id", "u", "--organization-id", "o"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot reach the gateway"))
    }

    @Test func configFromTheEnvironmentIsUsedWhenNoneIsGiven() throws {
        let site = try Site()
        try site.writeConfig(site.config())
        let result = try Binary.run(["token", "--out-user-id", "u", "--organization-id", "o"], environment: ["AUTHINFOD_CONFIG": site.configPath])
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test(arguments: [
        ["token"],
        ["token", "--out-user-id", "u"],
        ["token", "--out-user-id", "u", "--organization-id", "o", "--bogus"],
        ["token", "--out-user-id", "", "--organization-id", "o"],
        ["no-such-command"],
        ["help", "no-such-command"],
    ])
    func usageErrorsExitTwoWithOneLine(arguments: [String]) throws {
        let result = try Binary.run(arguments)
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("authinfod: "))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func versionAndHelpExitZero() throws {
        let version = try Binary.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("authinfod "))
        let help = try Binary.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("authinfod token"))
        let topic = try Binary.run(["help", "token"])
        #expect(topic.status == 0 && topic.stdout.contains("--out-user-id"))
    }
}
