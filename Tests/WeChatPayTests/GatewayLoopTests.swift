import Foundation
import Testing
import WeChatPay
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
