import Foundation
import Testing
@testable import WeChatPay
import WeChatPaySimulator

/// Calls on kept-alive connections run on the gateway loop's thread, many at once, with the
/// same verification, deadlines and recovery as the blocking path.
@Suite struct GatewayLoopTests {
    /// The name of the thread a completion ran on, and what the call gave.
    struct Ended: Sendable {
        let thread: String
        let result: Result<AuthInfo, WeChatPayError>
    }

    static func call(_ client: WeChatPayClient, _ request: AuthInfoRequest = GatewayFixture.device) async -> Ended {
        await withCheckedContinuation { continuation in
            client.authinfo(request) { result in
                let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
                continuation.resume(returning: Ended(thread: name.trimmingCharacters(in: .whitespacesAndNewlines), result: result))
            }
        }
    }

    @Test func theFirstCallConnectsOnAnExchangeThreadAndTheNextRunOnTheLoop() async throws {
        let gateway = try GatewayFixture()
        let client = gateway.client()
        let first = await Self.call(client)
        #expect(first.thread == "gw-exchange")
        #expect(try first.result.get().value.isEmpty == false)
        for _ in 0..<3 {
            let next = await Self.call(client)
            #expect(next.thread == "gw-loop")
            #expect(try next.result.get().value.isEmpty == false)
        }
        #expect(gateway.simulator.requests().count == 4)
    }

    @Test func anAnswerOnTheLoopIsVerifiedLikeAnyOther() async throws {
        let gateway = try GatewayFixture()
        let client = gateway.client()
        _ = try await client.authinfo(GatewayFixture.device)
        gateway.simulator.fault = .missingSignature
        let refused = await Self.call(client)
        #expect(refused.thread == "gw-loop")
        guard case .failure(let error) = refused.result else {
            Issue.record("an unsigned answer was accepted")
            return
        }
        #expect(error.kind == .signature(.missingHeaders(["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"])))
    }

    @Test func aSlowAnswerOnTheLoopTimesOutWithinTheTimeoutAndTheNextCallRecovers() async throws {
        var gateway = try GatewayFixture()
        gateway.configuration.timeout = 0.5
        let client = gateway.client()
        _ = try await client.authinfo(GatewayFixture.device)
        gateway.simulator.fault = .slow(seconds: 2)
        let start = Date()
        let slow = await Self.call(client)
        let elapsed = Date().timeIntervalSince(start)
        #expect(slow.thread == "gw-loop")
        guard case .failure(let error) = slow.result else {
            Issue.record("a 2 s answer beat a 0.5 s timeout")
            return
        }
        #expect(error.kind == .timeout && error.isRetryable)
        // The deadline is checked every 50 ms.
        #expect(elapsed >= 0.5 && elapsed < 0.5 + 0.4, "timed out after \(elapsed) s")
        gateway.simulator.fault = .none
        // The timed-out connection was dropped: the next call makes a new one.
        #expect(try await client.authinfo(GatewayFixture.device).value.isEmpty == false)
    }

    @Test func manyCallsAtOnceShareTheKeptAliveConnections() async throws {
        let gateway = try GatewayFixture()
        let client = gateway.client()
        let before = WeChatPayClient.connectionsOpened
        _ = try await client.authinfo(GatewayFixture.device)
        let ends = await withTaskGroup(of: Ended.self) { group in
            for index in 0..<48 {
                let request = AuthInfoRequest(spAppID: "wx8888888888888888", subAppID: nil, subMchID: "1900000999",
                                              deviceID: "dev-\(index)", rawData: "RAW-\(index)", organizationID: "org-1")
                group.addTask { await Self.call(client, request) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(ends.count == 48)
        for end in ends { #expect(throws: Never.self) { try end.result.get() } }
        #expect(ends.contains { $0.thread == "gw-loop" })
        // Calls found no idle connection only while others were out; never one per call.
        #expect(WeChatPayClient.connectionsOpened - before < 48)
        #expect(gateway.simulator.requests().count == 49)
    }
}

/// The transport under a gateway that misbehaves on a kept-alive connection.
@Suite struct HostileKeptAliveGatewayTests {
    static let ok = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)

    static func transport(_ server: KeptAliveRawServer, timeout: Double = 5) -> HTTPTransport {
        var configuration = ClientConfiguration(
            signer: RequestSigner(mchid: GatewayFixture.mchid, serialNumber: GatewayFixture.serial, privateKey: Fixtures.merchantKey),
            publicKey: WeChatPayPublicKey(id: "PUB_KEY_ID_0000000000000000000000000000000000", key: try! Fixtures.merchantKey.publicKey()),
            apiV3Key: nil, baseURL: server.url)
        configuration.timeout = timeout
        return HTTPTransport(configuration)
    }

    static let request = SignedRequest(method: "POST", pathAndQuery: "/v3/offlineface/authinfo", headers: ["Accept": "application/json"],
                                       body: Array("{}".utf8))

    /// `transport.send` on the gateway loop, as the client calls it.
    static func send(_ transport: HTTPTransport) async -> Result<GatewayAnswer, WeChatPayError> {
        await withCheckedContinuation { continuation in
            GatewayLoop.shared.loop.execute {
                transport.send(request, resign: { request }) { continuation.resume(returning: $0) }
            }
        }
    }

    @Test func bytesAfterAnAnswerKeepItsConnectionOutOfThePool() async throws {
        // Every answer carries the start of a second one: the next request on that connection
        // would take it for its own answer.
        let server = KeptAliveRawServer { _ in .bytes(Self.ok + Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nxx".utf8)) }
        let transport = Self.transport(server)
        let before = HTTPTransport.connectionsOpened.load(ordering: .relaxed)
        for _ in 0..<3 {
            let answer = try await Self.send(transport).get()
            #expect(answer.body == Array("ok".utf8))
        }
        #expect(HTTPTransport.connectionsOpened.load(ordering: .relaxed) - before >= 3)
    }

    @Test func anEndlessRunOfInterimAnswersIsRefusedAndTheLoopGoesOn() async throws {
        // The first answer is normal (its connection is kept); the second request gets
        // "100 Continue" without end.
        let server = KeptAliveRawServer { index in
            index == 0 ? .bytes(Self.ok) : .flood(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), limit: 64 << 20)
        }
        let transport = Self.transport(server)
        _ = try await Self.send(transport).get()
        let healthy = KeptAliveRawServer { _ in .bytes(Self.ok) }
        let other = Self.transport(healthy)
        _ = try await Self.send(other).get()

        async let flooded = Self.send(transport)
        // Meanwhile the loop serves other calls.
        for _ in 0..<5 { #expect(try await Self.send(other).get().body == Array("ok".utf8)) }
        guard case .failure(let error) = await flooded else {
            Issue.record("an endless run of 100 Continue was taken for an answer")
            return
        }
        #expect(error.message.contains("too long"), "\(error.message)")
        #expect(server.written < 8 << 20)
    }

    @Test func aGatewayThatNeverStopsSendingIsCutOffBeforeTheMemoryGoes() async throws {
        // A chunked body of one-byte chunks, each with a long extension: little body, many bytes.
        let chunk = Array("1;\(String(repeating: "x", count: 900))\r\na\r\n".utf8)
        let server = KeptAliveRawServer { index in
            index == 0 ? .bytes(Self.ok)
                : .flood(prefix: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8), Array(repeating: chunk, count: 64).flatMap { $0 },
                         limit: 256 << 20)
        }
        let transport = Self.transport(server, timeout: 30)
        _ = try await Self.send(transport).get()
        let start = Date()
        guard case .failure(let error) = await Self.send(transport) else {
            Issue.record("an endless chunked answer was accepted")
            return
        }
        #expect(error.message.contains("incomplete") || error.message.contains("larger"), "\(error.message)")
        // Cut off at the size limit, long before the 30 s timeout.
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(server.written < 64 << 20)
    }
}
