import Foundation
import Testing
@testable import WeChatPay

/// The https path of the client against a real TLS server: the certificate chain and host name
/// are checked, keep-alive works over TLS, and a certificate that does not check out is a
/// connection failure (so it fails over to the backup, never sends the request).
@Suite struct TLSTransportTests {
    /// A simulator behind a TLS relay whose certificate names `commonName`; the client speaks
    /// https to `localhost` and trusts the relay's certificate when `trusted`.
    func relayed(commonName: String, trusted: Bool) throws -> (GatewayFixture, TLSRelay) {
        var fixture = try GatewayFixture()
        let relay = try TLSRelay(commonName: commonName, backendPort: fixture.simulator.port)
        fixture.configuration.baseURL = URL(string: "https://localhost:\(relay.port)")!
        fixture.configuration.trustedCertificatesFile = trusted ? relay.certificateFile : nil
        return (fixture, relay)
    }

    @Test func httpsCallsVerifyTheCertificateAndReuseTheConnection() async throws {
        let (fixture, relay) = try relayed(commonName: "localhost", trusted: true)
        defer { relay.stop() }
        let client = fixture.client()
        for _ in 0..<3 {
            let info = try await client.authinfo(GatewayFixture.device)
            #expect(fixture.simulator.didIssue(info.value, to: "dev-0001"))
        }
        #expect(relay.connectionsAccepted == 1, "calls share a kept-alive TLS connection: \(relay.connectionsAccepted) for 3 calls")
    }

    @Test func anUntrustedCertificateIsRefusedAndFailsOverWithoutSendingTheRequest() async throws {
        var (fixture, relay) = try relayed(commonName: "localhost", trusted: false)
        defer { relay.stop() }
        let error = await expectFailure { try await fixture.client().authinfo(GatewayFixture.device) }
        #expect(error?.description.contains("certificate not trusted") == true, "\(String(describing: error))")
        #expect(fixture.simulator.requests().isEmpty, "nothing reached the gateway")

        fixture.configuration.backupBaseURL = fixture.simulator.baseURL
        let info = try await fixture.client().authinfo(GatewayFixture.device)
        #expect(fixture.simulator.didIssue(info.value, to: "dev-0001"), "failed over to the backup")
    }

    @Test func aCertificateForAnotherHostIsRefused() async throws {
        let (fixture, relay) = try relayed(commonName: "api.example.invalid", trusted: true)
        defer { relay.stop() }
        let error = await expectFailure { try await fixture.client().authinfo(GatewayFixture.device) }
        #expect(error?.description.contains("TLS handshake failed") == true, "\(String(describing: error))")
        #expect(fixture.simulator.requests().isEmpty)
    }
}

@Suite struct KeepAliveTests {
    /// A simulator and a client whose first call's connection is kept alive.
    func keptAlive() async throws -> (GatewayFixture, WeChatPayClient) {
        let fixture = try GatewayFixture()
        let client = fixture.client()
        _ = try await client.authinfo(GatewayFixture.device)
        for _ in 0..<100 where fixture.simulator.openConnections != 1 { try await Task.sleep(for: .milliseconds(20)) }
        try #require(fixture.simulator.openConnections == 1, "the first call's connection is kept alive")
        return (fixture, client)
    }

    /// The server dropping an idle kept-alive connection is not a failure: the request goes out
    /// again on a new connection, once.
    @Test func aKeptAliveConnectionTheServerClosedIsReplacedTransparently() async throws {
        let (fixture, client) = try await keptAlive()
        fixture.simulator.fault = .down
        fixture.simulator.fault = .none
        #expect(fixture.simulator.openConnections == 0, "the server closed the idle connection")
        let info = try await client.authinfo(GatewayFixture.device)
        #expect(fixture.simulator.didIssue(info.value, to: "dev-0001"))
        #expect(fixture.simulator.requests(path: WeChatPayClient.authInfoPath).count == 2, "sent once more, not twice")
    }

    /// The connection dies after the gateway read the request: the retry is signed afresh (the
    /// gateway refuses a nonce it has seen, SIGN_ERROR, which would reject the device).
    @Test func aRequestLostAfterTheGatewayReadItIsSentAgainWithAFreshNonce() async throws {
        let (fixture, client) = try await keptAlive()
        fixture.simulator.fault = .hangUpOnceAfterReading
        let info = try await client.authinfo(GatewayFixture.device)
        #expect(fixture.simulator.didIssue(info.value, to: "dev-0001"))
        #expect(fixture.simulator.requests(path: WeChatPayClient.authInfoPath).map(\.status) == [200, 200, 200],
                "read and lost, then accepted: no replay refusal")
    }
}

@Suite struct ReloadedClientTests {
    /// A reload builds a new client; it keeps the old one's connections when the base URLs and
    /// timeout are unchanged, and opens its own when they differ.
    @Test func aClientBuiltOnReloadSharesConnectionsOnlyWhenTheEndpointsAreUnchanged() async throws {
        var fixture = try GatewayFixture()
        let first = fixture.client()
        _ = try await first.authinfo(GatewayFixture.device)
        let reloaded = WeChatPayClient(configuration: fixture.configuration, reusingConnectionsOf: first)
        #expect(reloaded.sharesConnections(with: first))
        _ = try await reloaded.authinfo(GatewayFixture.device)

        fixture.configuration.timeout = 3
        let retimed = WeChatPayClient(configuration: fixture.configuration, reusingConnectionsOf: reloaded)
        #expect(!retimed.sharesConnections(with: reloaded), "a changed timeout gets a transport of its own")
        fixture.configuration.timeout = 5
        fixture.configuration.backupBaseURL = URL(string: "https://api2.mch.weixin.qq.com")!
        #expect(!WeChatPayClient(configuration: fixture.configuration, reusingConnectionsOf: reloaded).sharesConnections(with: reloaded))
        _ = try await retimed.authinfo(GatewayFixture.device)
    }

    /// A CA file rotated in place (same path, new certificates) gets a transport of its own, so
    /// the reload's TLS context trusts what the file holds now.
    @Test func aCAFileRotatedInPlaceIsReadAgainOnReload() throws {
        var fixture = try GatewayFixture()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ca-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func certificate(_ serial: String) throws -> String {
            try X509Certificate.selfSigned(key: RSAPrivateKey(generatingBits: 2048), serialNumber: serial, commonName: "localhost",
                                           notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(86_400)).pem
        }
        let file = directory + "/ca.pem"
        try certificate("01").write(toFile: file, atomically: true, encoding: .utf8)
        fixture.configuration.baseURL = URL(string: "https://localhost:1")!
        fixture.configuration.trustedCertificatesFile = file
        let first = fixture.client()
        #expect(WeChatPayClient(configuration: fixture.configuration, reusingConnectionsOf: first).sharesConnections(with: first), "unchanged: shared")
        try certificate("02").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(!WeChatPayClient(configuration: fixture.configuration, reusingConnectionsOf: first).sharesConnections(with: first),
                "the file's contents changed: a new transport, with a TLS context made from them")
    }
}
