import FoundationEssentials

/// Why an answer's signature was not accepted. Every case is retryable: the gateway may have
/// been impersonated, or may be probing that clients verify (`WECHATPAY/SIGNTEST/`).
public enum SignatureFailure: Error, Sendable, Equatable {
    /// Headers the gateway always sends were absent.
    case missingHeaders([String])
    /// A deliberate test signature (`WECHATPAY/SIGNTEST/…`) from the gateway.
    case signTest
    /// `Wechatpay-Signature-Type` named an algorithm other than WECHATPAY2-SHA256-RSA2048.
    case unsupportedType(String)
    /// `Wechatpay-Timestamp` missing a number or more than 300 s from the local clock.
    case staleTimestamp(skewSeconds: Int)
    /// No configured key or downloaded certificate has this `Wechatpay-Serial`.
    case unknownSerial(String)
    /// The platform certificate with this serial is outside its validity window.
    case certificateExpired(String)
    /// The signature does not verify over `TIMESTAMP\nNONCE\nBODY\n`: forged or tampered.
    case invalid
    /// The answer verifies, but its timestamp is more than 300 s from the local clock (positive:
    /// ahead of it): this host's clock is off by that much, or the answer is an old one replayed.
    case verifiedButStale(offsetSeconds: Int)

    var explanation: String {
        switch self {
        case .missingHeaders(let names): "answer carries no signature (missing \(names.joined(separator: ", ")))"
        case .signTest: "answer carries a WECHATPAY/SIGNTEST probe signature (the gateway checks that clients verify; retrying)"
        case .unsupportedType(let type): "answer signature type \(type) is not WECHATPAY2-SHA256-RSA2048"
        case .staleTimestamp(let skew): "answer timestamp is \(skew) s from the local clock (limit 300 s); check the host clock"
        case .unknownSerial(let serial): "answer is signed with key \(serial), which is neither the configured WeChat Pay public key nor a downloaded platform certificate"
        case .certificateExpired(let serial): "answer is signed with platform certificate \(serial), which is outside its validity period"
        case .invalid: "answer signature does not verify (forged or altered in transit)"
        case .verifiedButStale(let seconds):
            "the answer is signed correctly but stamped \(abs(seconds)) s \(seconds > 0 ? "ahead of" : "behind") this host's clock (limit 300 s): "
                + "this host's clock is off by that much (fix its time synchronisation: timedatectl, chrony or systemd-timesyncd), or the answer was replayed"
        }
    }
}

/// A failed APIv3 call, with what an operator needs to act on it.
public struct WeChatPayError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Could not reach the gateway or the connection broke (refused, DNS, TLS, reset).
        case transport(String)
        /// No complete answer within the configured timeout.
        case timeout
        /// The gateway answered with an error status and (usually) its `code`/`message`/`detail`.
        case http(status: Int, code: String?, message: String?, detail: String?)
        /// A 2xx answer whose body is not what the endpoint promises.
        case malformedAnswer(String)
        /// A 2xx answer whose signature was not accepted: never trusted, never cached.
        case signature(SignatureFailure)
        /// The request could not be built or signed locally (a key problem): nothing was sent.
        case local(String)
        /// An error status that would refuse the request (4xx other than 429) whose signature did
        /// not verify: anyone on the path could have sent it, so it is retried, never believed.
        case unverifiedError(status: Int, reason: SignatureFailure)
    }

    public let kind: Kind
    /// `METHOD /path` of the call.
    public let endpoint: String
    /// The gateway's `Request-ID`, when it answered; quote it to WeChat Pay support.
    public let requestID: String?
    /// `Date` header of the gateway's answer, when it answered (to spot a wrong host clock).
    let serverDate: Date?

    public init(kind: Kind, endpoint: String, requestID: String? = nil, serverDate: Date? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.requestID = requestID
        self.serverDate = serverDate
    }

    /// Whether trying again later (with backoff) may succeed: network, timeout, 429, 5xx, malformed
    /// answers and refused signatures are; other 4xx (PARAM_ERROR, NO_AUTH, SIGN_ERROR, …) and local
    /// failures are not.
    public var isRetryable: Bool {
        switch kind {
        case .transport, .timeout, .malformedAnswer, .signature, .unverifiedError: true
        case .http(let status, _, _, _): status == 429 || (500...599).contains(status)
        case .local: false
        }
    }

    /// A short machine-friendly code for logs and status: the gateway's `code` for HTTP errors,
    /// otherwise `transport`, `timeout`, `malformed_answer`, `signature` or `local`.
    public var code: String {
        switch kind {
        case .transport: "transport"
        case .timeout: "timeout"
        case .http(let status, let code, _, _): code ?? "HTTP_\(status)"
        case .malformedAnswer: "malformed_answer"
        case .signature: "signature"
        case .local: "local"
        case .unverifiedError: "unverified_error"
        }
    }

    /// Whether the gateway refused the request's raw_data itself (a stale or foreign raw_data,
    /// "无效的RawData数据"): the same raw_data cannot succeed, only new raw_data from the device.
    /// Only ever true of a verified refusal (unsigned ones are `unverifiedError`).
    public var refusesRawData: Bool {
        guard case .http(let status, let code, let message, let detail) = kind, (400...499).contains(status), status != 429 else { return false }
        let text = [code, message, detail].compactMap { $0 }.joined(separator: " ").lowercased().filter { $0 != "_" }
        return text.contains("rawdata") || text.contains("raw data")
    }

    /// The HTTP status, when the gateway answered with an error status.
    public var httpStatus: Int? {
        if case .http(let status, _, _, _) = kind { return status }
        return nil
    }

    /// What to check, when the error has a known operator-side cause.
    public var hint: String? {
        guard case .http(let status, let code, let message, let detail) = kind else { return nil }
        let text = [message, detail].compactMap { $0 }.joined(separator: " ").lowercased()
        if code == "SIGN_ERROR" {
            if text.contains("timestamp") || text.contains("时间") || clockLooksWrong {
                return "check the host clock (the gateway refuses requests more than 5 minutes off its time; is NTP running?)"
            }
            return "check merchant.serial_no and merchant.private_key_file: they must be the API certificate serial and key of merchant.mchid"
        }
        if code == "SYSTEM_ERROR" || (500...599).contains(status) {
            return "if this persists, check merchant.mchid and merchant.serial_no: a wrong one can surface as SYSTEM_ERROR"
        }
        if code == "NO_AUTH" {
            return "the merchant is not authorised for this API or this sub-merchant; check sub_mchid and the product's activation"
        }
        return nil
    }

    private var clockLooksWrong: Bool {
        guard let serverDate else { return false }
        return abs(serverDate.timeIntervalSinceNow) > 300
    }

    /// What happened, with the Request-ID and a hint, without the endpoint (for a log line
    /// that names the endpoint or the device on its own).
    public var message: String {
        var text: String
        switch kind {
        case .transport(let reason): text = "cannot reach the gateway: \(reason)"
        case .timeout: text = "the gateway did not answer in time"
        case .http(let status, let code, let message, _):
            text = "gateway answered HTTP \(status)"
            if let code { text += " \(code)" }
            if let message, !message.isEmpty { text += ": \(message)" }
        case .malformedAnswer(let reason): text = "malformed answer: \(reason)"
        case .signature(let failure): text = failure.explanation
        case .local(let reason): text = reason
        case .unverifiedError(let status, let reason):
            text = "an HTTP \(status) answer that does not carry the gateway's signature (\(reason.explanation)); not believed, retrying"
        }
        if let requestID { text += " (Request-ID \(requestID))" }
        if let hint { text += "; \(hint)" }
        return text
    }

    /// One line for the log or stderr: the call, then `message`.
    public var description: String { "\(endpoint): \(message)" }
}
