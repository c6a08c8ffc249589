import Foundation
import Testing
@testable import WeChatPay

@Suite struct SigningTests {
    @Test func signedMessageIsFiveNewlineTerminatedLines() {
        let message = RequestSigner.message(method: "post", pathAndQuery: "/v3/offlineface/authinfo?x=1", timestamp: 1554208460,
                                            nonce: "593BEC0C930BF1AFEB40B4A08C8FB242", body: Array("{\"a\":1}".utf8))
        #expect(String(decoding: message, as: UTF8.self) == "POST\n/v3/offlineface/authinfo?x=1\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{\"a\":1}\n")
        let get = RequestSigner.message(method: "GET", pathAndQuery: "/v3/certificates", timestamp: 1554208460, nonce: "N", body: [])
        #expect(String(decoding: get, as: UTF8.self) == "GET\n/v3/certificates\n1554208460\nN\n\n")
    }

    @Test func authorizationHeaderHasTheSchemeAndFiveQuotedPairs() throws {
        let signer = RequestSigner(mchid: "1900009191", serialNumber: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", privateKey: Fixtures.merchantKey)
        let header = try signer.authorization(method: "GET", pathAndQuery: "/v3/certificates", timestamp: 1554208460,
                                              nonce: "593BEC0C930BF1AFEB40B4A08C8FB242", body: [])
        #expect(header.hasPrefix("WECHATPAY2-SHA256-RSA2048 mchid=\"1900009191\",nonce_str=\"593BEC0C930BF1AFEB40B4A08C8FB242\",signature=\""))
        #expect(header.hasSuffix("\",timestamp=\"1554208460\",serial_no=\"1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C\""))
        #expect(!header.contains(", "))
        let signature = header.split(separator: "\"")[5]
        let expected = try Fixtures.merchantKey.sign(RequestSigner.message(method: "GET", pathAndQuery: "/v3/certificates", timestamp: 1554208460,
                                                                            nonce: "593BEC0C930BF1AFEB40B4A08C8FB242", body: []))
        #expect(String(signature) == Data(expected).base64EncodedString())
    }

    @Test func answerSignatureChecksHeadersTimestampAndSignTest() throws {
        let key = Fixtures.gatewayCredentials.platformKey
        let now = Date(timeIntervalSince1970: 1_763_800_000)
        let body = Array("{\"authinfo\":\"x\"}".utf8)
        func answer(timestamp: Int, signature: String? = nil, drop: String? = nil, type: String? = nil) throws -> GatewayAnswer {
            let message = AnswerSignature.message(timestamp: String(timestamp), nonce: "NONCE", body: body)
            var headers = ["Wechatpay-Timestamp": String(timestamp), "Wechatpay-Nonce": "NONCE",
                           "Wechatpay-Signature": try signature ?? Data(key.sign(message)).base64EncodedString(),
                           "Wechatpay-Serial": "PUB_KEY_ID_1"]
            if let type { headers["Wechatpay-Signature-Type"] = type }
            if let drop { headers[drop] = nil }
            return GatewayAnswer(status: 200, headers: headers, body: body)
        }
        let good = try AnswerSignature(answer: answer(timestamp: 1_763_800_000 - 299), now: now)
        try good.verify(body: body, with: key.publicKey())
        #expect(throws: SignatureFailure.invalid) { try good.verify(body: body + [0x20], with: key.publicKey()) }
        #expect(throws: SignatureFailure.staleTimestamp(skewSeconds: 301)) { try AnswerSignature(answer: answer(timestamp: 1_763_800_301), now: now) }
        #expect(throws: SignatureFailure.signTest) { try AnswerSignature(answer: answer(timestamp: 1_763_800_000, signature: "WECHATPAY/SIGNTEST/abc"), now: now) }
        #expect(throws: SignatureFailure.missingHeaders(["Wechatpay-Nonce"])) { try AnswerSignature(answer: answer(timestamp: 1_763_800_000, drop: "Wechatpay-Nonce"), now: now) }
        #expect(throws: SignatureFailure.unsupportedType("HMAC")) { try AnswerSignature(answer: answer(timestamp: 1_763_800_000, type: "HMAC"), now: now) }
    }
}

@Suite struct RequestBodyTests {
    /// The hand-built authinfo body must be the JSON `JSONEncoder` would make: same object, keys
    /// sorted, and byte for byte the same when nothing needs escaping.
    @Test(arguments: [
        ("RAW-dev-0001", nil),
        ("plain ascii raw data with / slash", "wx1234567890abcdef"),
        ("quote \" backslash \\ newline \n tab \t bell \u{07} del \u{7F}", nil),
        ("中文 raw_data ✓ and \u{2028} line separator", "wxsub"),
    ] as [(String, String?)])
    func authInfoBodyIsWhatJSONEncoderMakes(rawData: String, subAppID: String?) throws {
        let request = AuthInfoRequest(spAppID: "wx8888888888888888", subAppID: subAppID, subMchID: "1900000999",
                                      deviceID: "dev-0001", rawData: rawData, organizationID: "org-1")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let reference = try encoder.encode(request)
        let body = request.jsonBody()
        let decoded = try JSONSerialization.jsonObject(with: Data(body)) as? [String: String]
        #expect(decoded == (try JSONSerialization.jsonObject(with: reference) as? [String: String]))
        #expect(decoded?["raw_data"] == rawData)
        let keys = String(decoding: body, as: UTF8.self).components(separatedBy: "\":").dropLast().map { $0.split(separator: "\"").last.map(String.init) ?? "" }
        #expect(keys == keys.sorted())
        if rawData.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }) {
            #expect(body == Array(reference))
        }
    }
}
