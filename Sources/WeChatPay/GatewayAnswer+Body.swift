import FoundationEssentials
import Glibc

/// The fields of a gateway error body: `{"code": "...", "message": "...", "detail": {...}}`.
public struct GatewayErrorFields: Sendable, Equatable {
    public var code: String?
    public var message: String?
    /// `detail` re-encoded as compact JSON with sorted keys.
    public var detail: String?
}

extension GatewayAnswer {
    /// Largest authinfo accepted; the gateway's are a few hundred bytes.
    public static let maximumAuthInfoBytes = 16 * 1024
    /// Range of `expires_in` accepted: 1 s to 7 days.
    public static let acceptedExpiresIn = 1...604_800

    /// What an error body says; every field is nil when the body is not the gateway's error JSON.
    /// Never throws: an error answer is reported whatever its body holds.
    public var errorFields: GatewayErrorFields {
        var fields = GatewayErrorFields()
        guard let object = try? JSONParser.parse(body), case .object = object else { return fields }
        fields.code = object[member: "code"]?.string
        fields.message = object[member: "message"]?.string
        switch object[member: "detail"] {
        case let detail? where detail.isContainer: fields.detail = detail.text()
        default: break
        }
        return fields
    }

    /// The body of `POST /v3/offlineface/authinfo`: `{"authinfo": "…", "expires_in": N}` with
    /// `expires_in` optional. Refuses anything else, an empty authinfo or one over
    /// `maximumAuthInfoBytes`, and an `expires_in` outside `acceptedExpiresIn`.
    public func authInfo() throws(WeChatPayAnswerProblem) -> AuthInfo {
        let object = try jsonObject()
        let authinfo = try object.requiredString("authinfo")
        guard !authinfo.isEmpty, authinfo.utf8.count <= Self.maximumAuthInfoBytes else {
            throw WeChatPayAnswerProblem("authinfo is empty or longer than 16 KiB")
        }
        var expiresIn: Int?
        switch object[member: "expires_in"] {
        case nil, .null?: break
        case .number(let seconds)? where seconds.rounded() == seconds && abs(seconds) < 1e15: expiresIn = Int(seconds)
        default: throw WeChatPayAnswerProblem("body is not the expected JSON (wrong type at \"expires_in\")")
        }
        if let expiresIn, !Self.acceptedExpiresIn.contains(expiresIn) {
            throw WeChatPayAnswerProblem("expires_in \(expiresIn) is not between 1 s and 7 days")
        }
        return AuthInfo(value: authinfo, expiresIn: expiresIn)
    }

    /// The body of `POST /v3/offlinefacemch/tokens`: `{"token": "…"}` with a non-empty token.
    public func token() throws(WeChatPayAnswerProblem) -> String {
        let token = try jsonObject().requiredString("token")
        guard !token.isEmpty else { throw WeChatPayAnswerProblem("token is empty") }
        return token
    }

    /// The body as a JSON object (the strict parser of the config: on every refresh's path, and
    /// lighter than `JSONDecoder`).
    private func jsonObject() throws(WeChatPayAnswerProblem) -> JSONValue {
        guard let value = try? JSONParser.parse(body) else { throw WeChatPayAnswerProblem("body is not the expected JSON (not JSON)") }
        guard case .object = value else { throw WeChatPayAnswerProblem("body is not the expected JSON (not an object)") }
        return value
    }

    /// The body decoded as `type`; a problem that names what is missing or of the wrong type.
    func decoded<T: Decodable>(_ type: T.Type) throws(WeChatPayAnswerProblem) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            let what: String
            switch error as? DecodingError {
            case .keyNotFound(let key, _): what = "missing \"\(key.stringValue)\""
            case .typeMismatch(_, let context), .valueNotFound(_, let context):
                what = "wrong type at \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\""
            case .dataCorrupted: what = "not JSON"
            default: what = "unreadable"
            }
            throw WeChatPayAnswerProblem("body is not the expected JSON (\(what))")
        }
    }
}

private extension JSONValue {
    /// The string member `key`, or the problem naming it as missing or of the wrong type.
    func requiredString(_ key: String) throws(WeChatPayAnswerProblem) -> String {
        switch self[member: key] {
        case .string(let text)?: return text
        case nil: throw WeChatPayAnswerProblem("body is not the expected JSON (missing \"\(key)\")")
        default: throw WeChatPayAnswerProblem("body is not the expected JSON (wrong type at \"\(key)\")")
        }
    }
}
