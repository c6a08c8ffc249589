import AuthInfoDaemon
import Foundation
import HTTPServer
import WeChatPay

/// The inputs authinfod takes from outside, each driven with arbitrary bytes. A target returns
/// normally for any input it handles correctly (refusing it is correct); a broken invariant is a
/// `preconditionFailure`, which libFuzzer reports as a crash with the input that caused it.
enum FuzzTarget: String, CaseIterable {
    /// `HTTPRequestParser`: what every socket client sends.
    case http
    /// `ConfigLoader.parse`: the operator's configuration file.
    case config
    /// A gateway answer: error body, signature headers, authinfo and token bodies.
    case answer
    /// `HTTPAnswerReader`: the raw bytes a gateway (or anyone on the path) sends back.
    case reader

    func run(_ bytes: [UInt8]) {
        switch self {
        case .http: Self.http(bytes)
        case .config: Self.config(bytes)
        case .answer: Self.answer(bytes)
        case .reader: Self.reader(bytes)
        }
    }

    /// Byte 0 picks how the rest arrives (in reads of 1 to 16 bytes); the rest is the stream.
    /// Read in pieces or in one read, the stream gives the same answer or fails either way; an
    /// answer is a final status with a body within the limit and as long as its Content-Length.
    static func reader(_ bytes: [UInt8]) {
        let limit = 2048
        let stream = Array(bytes.dropFirst())
        let step = bytes.isEmpty ? 1 : Int(bytes[0]) % 16 + 1
        let pieces = stride(from: 0, to: stream.count, by: step).map { Array(stream[$0..<min($0 + step, stream.count)]) }
        let whole = HTTPAnswerReplay.read(chunks: [stream], maximumBodyBytes: limit)
        let split = HTTPAnswerReplay.read(chunks: pieces, maximumBodyBytes: limit)
        switch (whole, split) {
        case (.success(let a), .success(let b)):
            check(a.answer.status == b.answer.status && a.answer.headers == b.answer.headers && a.answer.body == b.answer.body,
                  "the same bytes in reads of \(step) gave another answer")
            let answer = a.answer
            check((200...599).contains(answer.status), "final status \(answer.status)")
            check(answer.body.count <= limit, "body within the limit")
            if answer.headers["transfer-encoding"] == nil, let length = answer.headers["content-length"], answer.status != 204, answer.status != 304 {
                check(Int(length) == answer.body.count, "body of \(answer.body.count) bytes, Content-Length \(length)")
            }
        case (.failure, .failure):
            break
        case (.success, .failure(let failure)), (.failure(let failure), .success):
            preconditionFailure("read whole and in reads of \(step), one succeeded and one failed: \(failure)")
        }
    }

    /// A request parsed whole must parse the same when it arrives in two reads (a server resumes
    /// the terminator search where `.incomplete` left it), and a complete request is never
    /// judged from a prefix of itself.
    static func http(_ bytes: [UInt8]) {
        let whole = HTTPRequestParser.parse(bytes[...])
        if case .request(let request, let consumed) = whole {
            check(consumed <= bytes.count && request.target.hasPrefix("/") && !request.method.isEmpty, "request fields")
            let length = request.header("Content-Length").flatMap(Int.init) ?? 0
            check(request.body.count == length, "body length \(request.body.count) is not Content-Length \(length)")
            let split = bytes.isEmpty ? 0 : Int(bytes[0]) % max(1, consumed)
            guard case .incomplete(let scanned) = HTTPRequestParser.parse(bytes[..<split]) else {
                preconditionFailure("a prefix of \(split) bytes of a valid request was not incomplete")
            }
            guard case .request(let again, let consumedAgain) = HTTPRequestParser.parse(bytes[...], scanFrom: scanned),
                  consumedAgain == consumed, again.target == request.target, again.body == request.body else {
                preconditionFailure("resuming the scan at \(scanned) parsed differently")
            }
        }
        if case .invalid(let status, let reason) = whole {
            check([400, 413, 431, 501, 505].contains(status) && !reason.isEmpty, "invalid status \(status)")
        }
    }

    /// A configuration is refused with a one-line error naming the file, or accepted with every
    /// documented constraint holding.
    static func config(_ bytes: [UInt8]) {
        let file = "/fuzz/authinfod.json"
        do {
            let configuration = try ConfigLoader.parse(bytes, file: file)
            let refresh = configuration.refresh
            check(refresh.interval > 0 && refresh.interval < refresh.authInfoTTL, "interval below ttl")
            check((0...0.5).contains(refresh.jitterFraction), "jitter in 0…0.5")
            check(refresh.backoffMinimum > 0 && refresh.backoffMinimum <= refresh.backoffMaximum, "backoff bounds")
            check(refresh.maximumRequestsPerSecond > 0 && refresh.maximumConcurrentRequests > 0, "limits positive")
            let ids = configuration.devices.map(\.id)
            check(Set(ids).count == ids.count, "device ids unique")
            check(ids.allSatisfy(DeviceID.isValid), "device ids valid")
            check(["https", "http"].contains(configuration.api.baseURL.scheme ?? ""), "base_url scheme")
        } catch {
            check(error.description.hasPrefix(file) && !error.description.contains("\n"), "one-line error naming the file: \(error.description)")
        }
    }

    /// The input is an answer: byte 0 picks the status, then `Name: value` header lines up to a
    /// blank line, then the body. Nothing a fuzzer writes may verify against the platform key.
    static func answer(_ bytes: [UInt8]) {
        let statuses = [200, 204, 400, 401, 403, 404, 429, 500, 502, 503]
        let status = bytes.isEmpty ? 200 : statuses[Int(bytes[0]) % statuses.count]
        let rest = bytes.dropFirst()
        let blank = rest.indices.first { rest[$0] == 10 && $0 + 1 < rest.endIndex && rest[$0 + 1] == 10 }
        let head = String(decoding: rest[..<(blank ?? rest.endIndex)], as: UTF8.self)
        let body = blank.map { Array(rest[($0 + 2)...]) } ?? []
        var headers: [String: String] = [:]
        for line in head.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let answer = GatewayAnswer(status: status, headers: headers, body: body)
        _ = answer.errorFields
        if let info = try? answer.authInfo() {
            check(!info.value.isEmpty && info.value.utf8.count <= GatewayAnswer.maximumAuthInfoBytes, "authinfo size")
            check(info.expiresIn.map(GatewayAnswer.acceptedExpiresIn.contains) ?? true, "expires_in range")
        }
        if let token = try? answer.token() { check(!token.isEmpty, "token non-empty") }
        if let signature = try? AnswerSignature(answer: answer, now: Date(timeIntervalSince1970: 1_763_800_000)) {
            check(abs(signature.timestamp - 1_763_800_000) <= 300, "timestamp within 300 s")
            check(!signature.signature.hasPrefix(AnswerSignature.signTestPrefix), "SIGNTEST refused")
            check((try? signature.verify(body: body, with: platformKey)) == nil, "an arbitrary answer verified")
        }
    }

    /// A platform key no input can have signed with.
    static let platformKey: RSAPublicKey = try! RSAPrivateKey(generatingBits: 2048).publicKey()

    static func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { preconditionFailure("fuzz invariant broken: \(what())") }
    }
}
