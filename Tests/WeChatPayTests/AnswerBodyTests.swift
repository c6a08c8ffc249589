import Foundation
import Testing
@testable import WeChatPay

/// What a verified 2xx answer's body must hold, read by the strict JSON parser (issue 16 moved
/// the hot path off `JSONDecoder`): every refusal names what is wrong.
@Suite struct AnswerBodyTests {
    private func answer(_ body: String) -> GatewayAnswer {
        GatewayAnswer(status: 200, headers: [:], body: Array(body.utf8))
    }

    private func problem(_ body: String) -> String? {
        do throws(WeChatPayAnswerProblem) {
            _ = try answer(body).authInfo()
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func authInfoWithAndWithoutItsLifetime() throws {
        #expect(try answer(#"{"authinfo":"A1","expires_in":3600}"#).authInfo() == AuthInfo(value: "A1", expiresIn: 3600))
        #expect(try answer(#"{"authinfo":"A1"}"#).authInfo() == AuthInfo(value: "A1", expiresIn: nil))
        #expect(try answer(#" {"expires_in":null,"authinfo":"\u0041\/"} "#).authInfo() == AuthInfo(value: "A/", expiresIn: nil))
        #expect(try answer(#"{"authinfo":"A1","expires_in":60,"extra":{"x":[1]}}"#).authInfo() == AuthInfo(value: "A1", expiresIn: 60))
    }

    @Test(arguments: [
        ("", "body is not the expected JSON (not JSON)"),
        ("{\"authinfo\":\"A\"", "body is not the expected JSON (not JSON)"),
        (#"{"authinfo":"A","authinfo":"B"}"#, "body is not the expected JSON (not JSON)"),
        (#"["authinfo"]"#, "body is not the expected JSON (not an object)"),
        (#"{"expires_in":60}"#, "body is not the expected JSON (missing \"authinfo\")"),
        (#"{"authinfo":42}"#, "body is not the expected JSON (wrong type at \"authinfo\")"),
        (#"{"authinfo":null}"#, "body is not the expected JSON (wrong type at \"authinfo\")"),
        (#"{"authinfo":"A","expires_in":"3600"}"#, "body is not the expected JSON (wrong type at \"expires_in\")"),
        (#"{"authinfo":"A","expires_in":3.5}"#, "body is not the expected JSON (wrong type at \"expires_in\")"),
        (#"{"authinfo":"A","expires_in":1e300}"#, "body is not the expected JSON (wrong type at \"expires_in\")"),
        (#"{"authinfo":"A","expires_in":0}"#, "expires_in 0 is not between 1 s and 7 days"),
        (#"{"authinfo":"A","expires_in":604801}"#, "expires_in 604801 is not between 1 s and 7 days"),
        (#"{"authinfo":""}"#, "authinfo is empty or longer than 16 KiB"),
    ])
    func refusalsNameWhatIsWrong(_ body: String, _ reason: String) {
        #expect(problem(body) == reason)
    }

    @Test func anAuthInfoOverTheLimitIsRefused() {
        let long = String(repeating: "x", count: GatewayAnswer.maximumAuthInfoBytes + 1)
        #expect(problem(#"{"authinfo":""# + long + #""}"#) == "authinfo is empty or longer than 16 KiB")
    }

    @Test func tokens() throws {
        #expect(try answer(#"{"token":"T"}"#).token() == "T")
        #expect(throws: WeChatPayAnswerProblem.self) { try answer(#"{"token":""}"#).token() }
        #expect(throws: WeChatPayAnswerProblem.self) { try answer(#"{"tok":"T"}"#).token() }
    }
}

/// Strings that are not UTF-8 are refused, not repaired (found by a review: the parser decoded
/// with replacement characters, so a signed answer with a broken authinfo was accepted).
@Suite struct JSONStringTests {
    @Test(arguments: [[0x22, 0xC3, 0x28, 0x22], [0x22, 0x41, 0x5C, 0x6E, 0xFF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22]])
    func invalidUTF8IsRefused(_ bytes: [UInt8]) {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(bytes) }
    }

    /// The same, for the one-piece path strings without escapes take (UTF8Span): overlong forms,
    /// code points past U+10FFFF, a surrogate, a lone continuation byte, a sequence cut off by the
    /// closing quote, and bytes that never start one; each is refused, and what is well formed
    /// is read as Foundation reads it.
    @Test(arguments: [[0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xF0, 0x80, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80],
                      [0xED, 0xB0, 0x80], [0x80], [0x41, 0xBF], [0xE4, 0xB8], [0xF0, 0x9F, 0x98], [0xF5, 0x80, 0x80, 0x80], [0xFE]])
    func malformedUTF8WithoutEscapesIsRefused(_ bytes: [UInt8]) {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse([0x22] + bytes + [0x22]) }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(Array(#"{"k":"a"#.utf8) + bytes + Array(#"b"}"#.utf8)) }
    }

    @Test(arguments: [[0x7F], [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF]])
    func wellFormedUTF8AtEveryBoundaryIsRead(_ bytes: [UInt8]) throws {
        let document = [0x22] + bytes + [0x22]
        let expected = try JSONSerialization.jsonObject(with: Data(document), options: .fragmentsAllowed) as? String
        #expect(try JSONParser.parse(document) == .string(try #require(expected)))
    }

    @Test func aBrokenAuthInfoIsRefused() {
        let body = Array(#"{"authinfo":"A"#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: WeChatPayAnswerProblem.self) { try GatewayAnswer(status: 200, headers: [:], body: body).authInfo() }
    }

    @Test func escapesTakeFourHexDigitsExactly() throws {
        #expect(try JSONParser.parse(Array(#""\u0041\u00e9""#.utf8)) == .string("Aé"))
        for bad in [#""\u+041""#, #""\u-041""#, #""\u 041""#, #""\u004""#] {
            #expect(throws: JSONSyntaxError.self, "\(bad)") { try JSONParser.parse(Array(bad.utf8)) }
        }
    }
}
