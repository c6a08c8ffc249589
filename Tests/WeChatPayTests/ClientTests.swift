import Foundation
import Testing
import WeChatPay
import WeChatPaySimulator

@Suite struct ClientTests {
    @Test func signedAuthInfoCallIsAcceptedAndVerified() async throws {
        let gateway = try GatewayFixture()
        let info = try await gateway.client().authinfo(GatewayFixture.device)
        #expect(gateway.simulator.didIssue(info.value, to: "dev-0001"))
        #expect(info.expiresIn == 3600)
        let records = gateway.simulator.requests(path: WeChatPayClient.authInfoPath)
        #expect(records.map(\.status) == [200])
    }

    @Test func expiresInIsOptional() async throws {
        let gateway = try GatewayFixture()
        gateway.simulator.expiresIn = nil
        let info = try await gateway.client().authinfo(GatewayFixture.device)
        #expect(info.expiresIn == nil)
    }

    @Test func tokenCallReturnsTheGatewayToken() async throws {
        let gateway = try GatewayFixture()
        let token = try await gateway.client().token(outUserID: "u-1", organizationID: "org-1")
        #expect(token.hasPrefix("SIMTOKEN-"))
    }

    @Test func requestsSignedWithTheWrongKeyAreRefusedAsSignErrorAndNotRetryable() async throws {
        var gateway = try GatewayFixture()
        gateway.configuration.signer = RequestSigner(mchid: GatewayFixture.mchid, serialNumber: GatewayFixture.serial,
                                                     privateKey: Fixtures.gatewayCredentials.platformKey)
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(error?.kind == .http(status: 401, code: "SIGN_ERROR", message: "签名错误，请检查后再试 (signature does not verify with the merchant certificate)", detail: nil))
        #expect(error?.isRetryable == false)
        #expect(error?.requestID?.hasPrefix("SIM-") == true)
    }

    @Test func aClockFiveMinutesOffIsASignErrorThatSaysCheckTheHostClock() async throws {
        var gateway = try GatewayFixture()
        gateway.configuration.clock = { Date().addingTimeInterval(-400) }
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(error?.code == "SIGN_ERROR")
        #expect(error?.hint?.contains("check the host clock") == true)
        #expect(error?.description.contains("check the host clock") == true)
    }

    @Test(arguments: [
        (SimulatorFault.forgedSignature, SignatureFailure.invalid),
        (.signTest, .signTest),
        (.staleTimestamp, .verifiedButStale(offsetSeconds: -600)),
    ])
    func untrustworthyAnswersAreRefusedAsRetryableSignatureErrors(fault: SimulatorFault, expected: SignatureFailure) async throws {
        let gateway = try GatewayFixture()
        gateway.simulator.fault = fault
        let started = Date()
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        // The skew is measured when the answer is checked: ten minutes, plus however long the
        // call took (a busy test machine can hold an async test for a while).
        let took = Int(Date().timeIntervalSince(started).rounded(.up))
        guard case .signature(let failure) = error?.kind else {
            Issue.record("expected a signature error, got \(String(describing: error))")
            return
        }
        if case .verifiedButStale(let offset) = failure {
            // Genuinely signed, ten minutes old: measured, then refused for its age.
            #expect((599...601 + took).contains(-offset), "ten minutes stale, the call took \(took) s")
            #expect(error?.description.contains("this host's clock is off by that much") == true, "\(String(describing: error))")
        } else {
            #expect(failure == expected)
        }
        #expect(error?.isRetryable == true)
        #expect(error?.code == "signature")
    }

    @Test func answersWithoutSignatureHeadersAreRefused() async throws {
        let gateway = try GatewayFixture()
        gateway.simulator.fault = .missingSignature
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(error?.kind == .signature(.missingHeaders(["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"])))
    }

    @Test func answerSignedUnderAnUnknownPublicKeyIDIsRefused() async throws {
        var gateway = try GatewayFixture()
        gateway.configuration.publicKey = WeChatPayPublicKey(id: "PUB_KEY_ID_0000", key: try Fixtures.merchantKey.publicKey())
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(error?.kind == .signature(.unknownSerial(gateway.simulator.credentials.publicKeyID)))
    }

    @Test func tamperedBodyFailsVerification() throws {
        let credentials = Fixtures.gatewayCredentials
        let body = Array("{\"authinfo\":\"real\"}".utf8)
        let timestamp = String(Int(Date().timeIntervalSince1970))
        let signature = try credentials.platformKey.sign(AnswerSignature.message(timestamp: timestamp, nonce: "N", body: body))
        let tampered = Array("{\"authinfo\":\"fake\"}".utf8)
        let answer = GatewayAnswer(status: 200, headers: ["Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": "N",
                                                          "Wechatpay-Signature": Data(signature).base64EncodedString(),
                                                          "Wechatpay-Serial": credentials.publicKeyID], body: tampered)
        let parsed = try AnswerSignature(answer: answer, now: Date())
        #expect(throws: SignatureFailure.invalid) { try parsed.verify(body: tampered, with: credentials.platformKey.publicKey()) }
        try parsed.verify(body: body, with: credentials.platformKey.publicKey())
    }

    @Test func garbageBodyIsAMalformedAnswer() async throws {
        let gateway = try GatewayFixture()
        gateway.simulator.fault = .garbageBody
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        guard case .malformedAnswer = error?.kind else {
            Issue.record("expected malformedAnswer, got \(String(describing: error))")
            return
        }
        #expect(error?.isRetryable == true)
    }

    @Test func serverErrorAndRateLimitAreRetryableHTTPErrorsWithoutFailover() async throws {
        var gateway = try GatewayFixture()
        let backup = try GatewayFixture()
        gateway.configuration.backupBaseURL = backup.simulator.baseURL
        for (fault, status, code) in [(SimulatorFault.serverError, 500, "SYSTEM_ERROR"), (.rateLimited, 429, "FREQUENCY_LIMITED")] {
            gateway.simulator.fault = fault
            let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
            #expect(error?.httpStatus == status)
            #expect(error?.code == code)
            #expect(error?.isRetryable == true)
        }
        #expect(backup.simulator.requests().isEmpty, "HTTP error statuses must not fail over")
    }

    @Test func rejectedDeviceIsANonRetryableHTTPError() async throws {
        let gateway = try GatewayFixture()
        gateway.simulator.reject(deviceID: "dev-0001", status: 403, code: "NO_AUTH", message: "not authorised")
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(error?.kind == .http(status: 403, code: "NO_AUTH", message: "not authorised", detail: nil))
        #expect(error?.isRetryable == false)
        #expect(error?.hint != nil)
    }

    @Test func refusedConnectionFailsOverToTheBackupWithTheSameSignedRequest() async throws {
        var gateway = try GatewayFixture()
        let primary = RefusingPort()
        defer { withExtendedLifetime(primary) {} }
        gateway.configuration.baseURL = URL(string: "http://127.0.0.1:\(primary.port)")!
        gateway.configuration.backupBaseURL = gateway.simulator.baseURL
        let info = try await gateway.client().authinfo(GatewayFixture.device)
        #expect(gateway.simulator.didIssue(info.value, to: "dev-0001"))
    }

    /// A primary that never answers the connect (a dark host, a dropped route) fails over like
    /// a refusal; the primary may take half of the timeout, and the whole call ends within it.
    @Test func aConnectTimeoutFailsOverToTheBackupWithinTheTimeout() async throws {
        var gateway = try GatewayFixture()
        let primary = try UnansweredPort()
        gateway.configuration.baseURL = URL(string: "http://127.0.0.1:\(primary.port)")!
        gateway.configuration.backupBaseURL = gateway.simulator.baseURL
        gateway.configuration.timeout = 2
        let started = Date()
        let info = try await gateway.client().authinfo(GatewayFixture.device)
        let elapsed = Date().timeIntervalSince(started)
        #expect(gateway.simulator.didIssue(info.value, to: "dev-0001"), "answered by the backup")
        #expect(elapsed >= 0.9 && elapsed < 2.5, "the primary's connect had half the timeout, then the backup answered: \(elapsed) s")
    }

    @Test func aConnectTimeoutWithoutBackupIsARetryableTransportErrorWithinTheTimeout() async throws {
        var gateway = try GatewayFixture()
        let primary = try UnansweredPort()
        gateway.configuration.baseURL = URL(string: "http://127.0.0.1:\(primary.port)")!
        gateway.configuration.timeout = 1
        let started = Date()
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(Date().timeIntervalSince(started) < 1.5)
        guard case .transport(let reason) = error?.kind else {
            Issue.record("expected a transport error, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("connecting timed out"), "\(reason)")
        #expect(error?.isRetryable == true)
    }

    @Test func refusedConnectionWithoutBackupIsARetryableTransportError() async throws {
        var gateway = try GatewayFixture()
        let refusing = RefusingPort()
        defer { withExtendedLifetime(refusing) {} }
        gateway.configuration.baseURL = URL(string: "http://127.0.0.1:\(refusing.port)")!
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        guard case .transport(let reason) = error?.kind else {
            Issue.record("expected a transport error, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("connection refused"))
        #expect(error?.isRetryable == true)
    }

    @Test func gatewayDownOnBothDomainsReportsBoth() async throws {
        var gateway = try GatewayFixture()
        gateway.configuration.backupBaseURL = gateway.simulator.baseURL
        gateway.simulator.fault = .down
        let refusing = RefusingPort()
        defer { withExtendedLifetime(refusing) {} }
        gateway.configuration.baseURL = URL(string: "http://127.0.0.1:\(refusing.port)")!
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        guard case .transport(let reason) = error?.kind else {
            Issue.record("expected a transport error, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("primary") && reason.contains("backup"))
        gateway.simulator.fault = .none
        gateway.configuration.baseURL = gateway.simulator.baseURL
        _ = try await gateway.client().authinfo(GatewayFixture.device)
    }

    @Test func slowGatewayIsARetryableTimeout() async throws {
        var gateway = try GatewayFixture()
        gateway.configuration.timeout = 0.5
        gateway.simulator.fault = .slow(seconds: 2)
        let error = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(error?.kind == .timeout)
        #expect(error?.isRetryable == true)
    }

    @Test func everyRequestUsesAFreshNonceSoNoneIsRefusedAsReplay() async throws {
        let gateway = try GatewayFixture()
        let client = gateway.client()
        for _ in 0..<20 { _ = try await client.authinfo(GatewayFixture.device) }
        #expect(gateway.simulator.requests().allSatisfy { $0.status == 200 })
    }
}

@Suite struct CertificateModeTests {
    @Test func certificateModeDownloadsDecryptsAndVerifies() async throws {
        let gateway = try GatewayFixture(signingMode: .platformCertificate, verifyWithPublicKey: false, verifyWithCertificates: true)
        let client = gateway.client()
        let info = try await client.authinfo(GatewayFixture.device)
        #expect(gateway.simulator.didIssue(info.value, to: "dev-0001"))
        #expect(gateway.simulator.requests(path: WeChatPayClient.certificatesPath).count == 1)
        _ = try await client.authinfo(GatewayFixture.device)
        #expect(gateway.simulator.requests(path: WeChatPayClient.certificatesPath).count == 1, "certificates are cached")
    }

    @Test func downloadedCertificatesAreHandedToTheCallerForPersistence() async throws {
        var gateway = try GatewayFixture(signingMode: .platformCertificate, verifyWithPublicKey: false, verifyWithCertificates: true)
        let received = Received()
        gateway.configuration.events = { event in
            if case .certificatesUpdated(let certificates) = event { received.add(certificates.map(\.serialNumber)) }
        }
        let downloaded = try await gateway.client().downloadCertificates()
        #expect(downloaded.map(\.serialNumber) == [gateway.simulator.credentials.certificate.serialNumber])
        #expect(received.serials == [gateway.simulator.credentials.certificate.serialNumber])

        // A later client starting from the persisted set needs no download (offline restart).
        var restarted = gateway
        restarted.configuration.platformCertificates = try downloaded.map { try X509Certificate(pem: $0.pem) }
        restarted.configuration.platformCertificatesDownloadedAt = Date()
        _ = try await restarted.client().authinfo(GatewayFixture.device)
        #expect(gateway.simulator.requests(path: WeChatPayClient.certificatesPath).count == 1)
    }

    @Test func anUnknownSerialTriggersOneRateLimitedDownload() async throws {
        var gateway = try GatewayFixture(signingMode: .platformCertificate, verifyWithPublicKey: false, verifyWithCertificates: true)
        let clock = TestClock()
        gateway.configuration.clock = { clock.now }
        let client = gateway.client()
        _ = try await client.authinfo(GatewayFixture.device)
        clock.advance(61)
        try gateway.simulator.rotateCertificate()
        let info = try await client.authinfo(GatewayFixture.device)
        #expect(gateway.simulator.didIssue(info.value, to: "dev-0001"))
        #expect(gateway.simulator.requests(path: WeChatPayClient.certificatesPath).count == 2)

        try gateway.simulator.rotateCertificate()
        let error = await expectFailure { try await client.authinfo(GatewayFixture.device) }
        #expect(error?.kind == .signature(.unknownSerial(gateway.simulator.credentials.certificate.serialNumber)))
        #expect(gateway.simulator.requests(path: WeChatPayClient.certificatesPath).count == 2, "a second download within a minute is refused")
    }

    @Test func aWrongAPIv3KeyCannotDecryptAndNothingIsTrusted() async throws {
        var gateway = try GatewayFixture(signingMode: .platformCertificate, verifyWithPublicKey: false, verifyWithCertificates: true)
        gateway.configuration.apiV3Key = SecretBytes(Array("WRONGWRONGWRONGWRONGWRONGWRONG12".utf8))
        let error = await expectFailure { try await gateway.client().downloadCertificates() }
        guard case .malformedAnswer(let reason) = error?.kind else {
            Issue.record("expected malformedAnswer, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("apiv3_key_file"))
        let call = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        if case .signature(.unknownSerial) = call?.kind {} else { Issue.record("expected unknownSerial, got \(String(describing: call))") }
    }

    @Test func migrationModeVerifiesEitherKeyBySerial() async throws {
        let gateway = try GatewayFixture(signingMode: .publicKey, verifyWithPublicKey: true, verifyWithCertificates: true)
        let client = gateway.client()
        _ = try await client.authinfo(GatewayFixture.device)
        #expect(gateway.simulator.requests(path: WeChatPayClient.certificatesPath).isEmpty, "no download while answers use the public key")
        gateway.simulator.signingMode = .platformCertificate
        _ = try await client.authinfo(GatewayFixture.device)
        #expect(gateway.simulator.requests(path: WeChatPayClient.certificatesPath).count == 1)
    }
}

/// A wall clock that tests move forward by hand (within the gateway's 5-minute window).
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: TimeInterval = 0

    var now: Date { lock.withLock { Date().addingTimeInterval(offset) } }
    func advance(_ seconds: TimeInterval) { lock.withLock { offset += seconds } }
}

/// Collects values reported from any thread.
final class Received: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String] = []

    func add(_ new: [String]) { lock.withLock { values += new } }
    var serials: [String] { lock.withLock { values } }
}

@Suite struct HostileGatewayTests {
    /// Chunk sizes a hostile or broken server might send: each ends in a retryable malformed
    /// answer, never a crash.
    @Test(arguments: ["-1", "-10", "+5", "0x10", "fffffffff", "1 2", "-0"])
    func invalidChunkSizesAreMalformedAnswers(size: String) async throws {
        let gateway = RawGateway(answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n\(size)\r\nabc\r\n0\r\n\r\n")
        var fixture = try GatewayFixture()
        fixture.configuration.baseURL = gateway.url
        let error = await expectFailure { try await fixture.client().authinfo(GatewayFixture.device) }
        #expect(error?.isRetryable == true, "\(String(describing: error))")
        #expect(error?.description.contains("chunk") == true, "\(String(describing: error))")
        withExtendedLifetime(gateway) {}
    }
}

extension HostileGatewayTests {
    /// A refusal nobody signed (anyone on the path can send a 400) is retryable and says why;
    /// the gateway's own, signed refusal is believed.
    @Test func anUnsignedRefusalIsNotBelievedButASignedOneIs() async throws {
        let gateway = try GatewayFixture()
        gateway.simulator.fault = .unsignedError(status: 400)
        let forged = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(forged?.code == "unverified_error")
        #expect(forged?.isRetryable == true)
        #expect(forged?.description.contains("HTTP 400") == true)
        gateway.simulator.fault = .none
        gateway.simulator.reject(deviceID: GatewayFixture.device.deviceID)
        let genuine = await expectFailure { try await gateway.client().authinfo(GatewayFixture.device) }
        #expect(genuine?.httpStatus == 400)
        #expect(genuine?.isRetryable == false)
    }
}
