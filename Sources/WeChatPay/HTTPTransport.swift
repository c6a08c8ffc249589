import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A signed request ready to send: the same bytes and headers go to the primary and, on a
/// connection-level failure, to the backup domain (the signature covers no host).
struct SignedRequest: Sendable {
    let method: String
    let pathAndQuery: String
    let headers: [String: String]
    let body: [UInt8]

    var endpoint: String { "\(method) \(pathAndQuery.split(separator: "?", maxSplits: 1).first.map(String.init) ?? pathAndQuery)" }
}

/// Sends requests with URLSession: a per-request timeout, no cookies, no cache, no redirects,
/// no proxy, and one failover to the backup base URL when the primary cannot be connected to.
final class HTTPTransport: Sendable {
    /// Answers larger than this are refused as malformed (the face-pay answers are a few KiB).
    static let maximumAnswerBytes = 1 << 20

    private let session: URLSession
    private let baseURL: URL
    private let backupBaseURL: URL?
    private let timeout: TimeInterval

    init(baseURL: URL, backupBaseURL: URL?, timeout: TimeInterval) {
        self.baseURL = baseURL
        self.backupBaseURL = backupBaseURL
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.connectionProxyDictionary = [:]
        session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }

    deinit { session.finishTasksAndInvalidate() }

    /// Whether this transport sends to these URLs with this timeout (so a new client may share it).
    func serves(baseURL: URL, backupBaseURL: URL?, timeout: TimeInterval) -> Bool {
        self.baseURL == baseURL && self.backupBaseURL == backupBaseURL && self.timeout == timeout
    }

    /// Sends `request` to the primary base URL, and once more to the backup when the primary
    /// could not be connected to. HTTP error statuses are answers, never failed over.
    func send(_ request: SignedRequest) async throws(WeChatPayError) -> GatewayAnswer {
        do {
            return try await send(request, to: baseURL)
        } catch let error where error.isConnectionFailure {
            guard let backupBaseURL else { throw error.wrapped(request) }
            do {
                return try await send(request, to: backupBaseURL)
            } catch let backupError {
                throw WeChatPayError(
                    kind: backupError.kind(request).failedOver(primary: error.reason),
                    endpoint: request.endpoint)
            }
        } catch {
            throw error.wrapped(request)
        }
    }

    private func send(_ request: SignedRequest, to base: URL) async throws(TransportFailure) -> GatewayAnswer {
        guard let url = URL(string: base.absoluteString.trimmingSuffix("/") + request.pathAndQuery) else {
            throw TransportFailure(code: nil, reason: "cannot form a URL from \(base) and \(request.pathAndQuery)", host: base.host ?? "")
        }
        var urlRequest = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        if !request.body.isEmpty { urlRequest.httpBody = Data(request.body) }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: urlRequest)
        } catch let error as URLError {
            throw TransportFailure(code: error.code, reason: Self.describe(error), host: url.host ?? "")
        } catch {
            throw TransportFailure(code: nil, reason: "\(error)", host: url.host ?? "")
        }
        guard let http = response as? HTTPURLResponse else {
            throw TransportFailure(code: nil, reason: "not an HTTP answer", host: url.host ?? "")
        }
        guard data.count <= Self.maximumAnswerBytes else {
            throw TransportFailure(code: nil, reason: "answer of \(data.count) bytes is larger than \(Self.maximumAnswerBytes)", host: url.host ?? "", oversized: true)
        }
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { headers[name] = value }
        }
        return GatewayAnswer(status: http.statusCode, headers: headers, body: Array(data))
    }

    private static func describe(_ error: URLError) -> String {
        switch error.code {
        case .cannotConnectToHost: "connection refused"
        case .cannotFindHost, .dnsLookupFailed: "host name not found (DNS)"
        case .notConnectedToInternet: "no network"
        case .networkConnectionLost: "connection lost"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
             .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
            "TLS handshake failed (\(error.localizedDescription))"
        case .timedOut: "timed out"
        default: error.localizedDescription
        }
    }
}

/// A URLSession failure before any answer, kept apart from `WeChatPayError` so failover can
/// tell connection-level failures from the rest.
struct TransportFailure: Error {
    let code: URLError.Code?
    let reason: String
    let host: String
    var oversized = false

    /// Failures where the request cannot have reached the gateway, so resending is safe.
    var isConnectionFailure: Bool {
        guard let code else { return false }
        return [.cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet, .secureConnectionFailed].contains(code)
    }

    func kind(_ request: SignedRequest) -> WeChatPayError.Kind {
        if oversized { return .malformedAnswer(reason) }
        if code == .timedOut { return .timeout }
        return .transport("\(host): \(reason)")
    }

    func wrapped(_ request: SignedRequest) -> WeChatPayError {
        WeChatPayError(kind: kind(request), endpoint: request.endpoint)
    }
}

extension WeChatPayError.Kind {
    func failedOver(primary: String) -> Self {
        if case .transport(let reason) = self { return .transport("primary: \(primary); backup \(reason)") }
        return self
    }
}

/// Refuses every redirect: the gateway never redirects, and a redirect could leak the signed request.
private final class NoRedirects: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
