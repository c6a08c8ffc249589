import FoundationEssentials

/// Makes signed WeChat Pay APIv3 calls and trusts no answer it cannot verify.
///
/// Every request is signed with the merchant key; every 2xx answer must carry a valid signature
/// from the WeChat Pay public key or a platform certificate (chosen by `Wechatpay-Serial`),
/// within 300 s of the local clock, before its body is even parsed. Failures are
/// `WeChatPayError`s that say whether retrying may help. Safe to use from any thread.
///
/// An authinfo call on a kept-alive connection runs on `GatewayLoop`'s thread — signed there,
/// its answer read and verified as it arrives — when nothing in it can block: no platform
/// certificate can need downloading (no APIv3 key configured). Every other call runs whole on
/// one thread of `ExchangeThreads`, which may block. The completion-handler methods call back
/// from the thread that ended the call, the async ones resume the caller when it is done.
/// Swift concurrency's threads never block on the network.
public final class WeChatPayClient: Sendable {
    public static let authInfoPath = "/v3/offlineface/authinfo"
    public static let tokensPath = "/v3/offlinefacemch/tokens"
    public static let certificatesPath = "/v3/certificates"

    private let configuration: ClientConfiguration
    private let transport: HTTPTransport
    private let certificates: PlatformCertificates
    /// The gateway's clock as verified answers show it (kept across a reload's new client).
    public let gatewayClock: GatewayClock

    /// A client for `configuration`. With `previous` (a reload), its connections are kept when the
    /// base URLs and timeout are unchanged: a new HTTP session per reload would grow the process.
    public init(configuration: ClientConfiguration, reusingConnectionsOf previous: WeChatPayClient? = nil) {
        self.configuration = configuration
        if let previous, previous.transport.serves(configuration) {
            transport = previous.transport
        } else {
            transport = HTTPTransport(configuration)
        }
        gatewayClock = previous?.gatewayClock ?? GatewayClock()
        certificates = PlatformCertificates(initial: configuration.platformCertificates,
                                            downloadedAt: configuration.platformCertificatesDownloadedAt,
                                            minimumAttemptInterval: configuration.certificateAttemptInterval)
    }

    /// Connections to the gateway this process opened so far, by every client (each https one
    /// with its TLS handshake).
    public static var connectionsOpened: Int { HTTPTransport.connectionsOpened.load(ordering: .relaxed) }

    /// Whether this client sends through the same connections as `other` (a reload's reuse).
    func sharesConnections(with other: WeChatPayClient) -> Bool { transport === other.transport }

    /// `POST /v3/offlineface/authinfo`: a fresh authinfo for one device, to `completion` on the
    /// gateway loop's thread or the exchange thread that ended the call.
    public func authinfo(_ request: AuthInfoRequest, completion: @escaping @Sendable (Result<AuthInfo, WeChatPayError>) -> Void) {
        guard configuration.apiV3Key == nil else {
            return ExchangeThreads.shared.run { completion(Result { () throws(WeChatPayError) in try self.authinfoBlocking(request) }) }
        }
        GatewayLoop.shared.loop.execute {
            let signed: SignedCall
            do throws(WeChatPayError) {
                signed = try self.signedCall(method: "POST", path: Self.authInfoPath, body: request.jsonBody())
            } catch {
                return completion(.failure(error))
            }
            self.transport.send(signed.request, resign: signed.resign) { sent in
                completion(Result { () throws(WeChatPayError) in try self.authInfo(in: self.judged(sent.get(), "POST \(Self.authInfoPath)")) })
            }
        }
    }

    /// `POST /v3/offlineface/authinfo`: a fresh authinfo for one device.
    public func authinfo(_ request: AuthInfoRequest) async throws(WeChatPayError) -> AuthInfo {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<AuthInfo, WeChatPayError>, Never>) in
            authinfo(request) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// `POST /v3/offlinefacemch/tokens` (scene WEBSESSION): a face-pay signing token for one
    /// user, to `completion` on the exchange thread that made the call.
    public func token(outUserID: String, organizationID: String, completion: @escaping @Sendable (Result<String, WeChatPayError>) -> Void) {
        ExchangeThreads.shared.run {
            completion(Result { () throws(WeChatPayError) in try self.tokenBlocking(outUserID: outUserID, organizationID: organizationID) })
        }
    }

    /// `POST /v3/offlinefacemch/tokens` (scene WEBSESSION): a face-pay signing token for one user.
    public func token(outUserID: String, organizationID: String) async throws(WeChatPayError) -> String {
        try await ExchangeThreads.shared.result { () throws(WeChatPayError) in
            try self.tokenBlocking(outUserID: outUserID, organizationID: organizationID)
        }
    }

    /// `GET /v3/certificates`: downloads, decrypts (APIv3 key) and verifies the platform
    /// certificates, installs them for verification and reports them as `.certificatesUpdated`.
    @discardableResult
    public func downloadCertificates() async throws(WeChatPayError) -> [X509Certificate] {
        try await ExchangeThreads.shared.result { () throws(WeChatPayError) in try self.downloadCertificatesBlocking() }
    }

    private func authinfoBlocking(_ request: AuthInfoRequest) throws(WeChatPayError) -> AuthInfo {
        try authInfo(in: call(method: "POST", path: Self.authInfoPath, body: request.jsonBody()))
    }

    /// The authinfo a verified authinfo answer carries.
    private func authInfo(in answer: GatewayAnswer) throws(WeChatPayError) -> AuthInfo {
        try accepted(answer, "POST \(Self.authInfoPath)") { answer throws(WeChatPayAnswerProblem) in try answer.authInfo() }
    }

    private func tokenBlocking(outUserID: String, organizationID: String) throws(WeChatPayError) -> String {
        let endpoint = "POST \(Self.tokensPath)"
        let request = TokenRequest(outUserID: outUserID, organizationID: organizationID)
        let answer = try call(method: "POST", path: Self.tokensPath, body: try encode(request, endpoint))
        return try accepted(answer, endpoint) { answer throws(WeChatPayAnswerProblem) in try answer.token() }
    }

    private func downloadCertificatesBlocking() throws(WeChatPayError) -> [X509Certificate] {
        let endpoint = "GET \(Self.certificatesPath)"
        guard let apiV3Key = configuration.apiV3Key else {
            throw WeChatPayError(kind: .local("platform certificates need merchant.apiv3_key_file"), endpoint: endpoint)
        }
        let serial = certificates.newestValidSerial(at: configuration.clock())
        let answer = try transport.sendBlocking(try sign(method: "GET", path: Self.certificatesPath, body: [], serial: serial)) {
            try? self.sign(method: "GET", path: Self.certificatesPath, body: [], serial: serial)
        }
        try checkStatus(answer, endpoint)
        let downloaded = try accepted(answer, endpoint) { answer throws(WeChatPayAnswerProblem) in
            try answer.decoded(CertificateList.self).certificates(apiV3Key: apiV3Key)
        }
        let now = configuration.clock()
        // The answer is signed by one of the certificates it carries; they are authentic because
        // they decrypted with the APIv3 key, so they may vouch for the answer that brought them.
        let signature = try signatureHeaders(answer, endpoint, now: now)
        let key: RSAPublicKey
        if let certificate = downloaded.first(where: { $0.serialNumber == signature.serial.uppercased() }) {
            key = certificate.publicKey
        } else {
            key = try verificationKey(serial: signature.serial, now: now, allowDownload: false, endpoint, answer)
        }
        do {
            try signature.verify(body: answer.body, with: key)
        } catch {
            throw WeChatPayError(kind: .signature(error), endpoint: endpoint, requestID: answer.requestID)
        }
        certificates.install(downloaded, at: now)
        configuration.events?(.certificatesUpdated(downloaded))
        return downloaded
    }

    // MARK: - One call

    /// Signs and sends one request, checks the status, and verifies a 2xx answer's signature.
    /// Blocks: exchange threads only.
    private func call(method: String, path: String, body: [UInt8]) throws(WeChatPayError) -> GatewayAnswer {
        refreshCertificatesIfDue()
        let signed = try signedCall(method: method, path: path, body: body)
        return try judged(transport.sendBlocking(signed.request, resign: signed.resign), "\(method) \(path)")
    }

    /// A signed request, and how to sign it again (a fresh nonce) should it have to be re-sent.
    private struct SignedCall {
        let request: SignedRequest
        let resign: @Sendable () -> SignedRequest?
    }

    private func signedCall(method: String, path: String, body: [UInt8]) throws(WeChatPayError) -> SignedCall {
        let serial = certificates.newestValidSerial(at: configuration.clock())
        return SignedCall(request: try sign(method: method, path: path, body: body, serial: serial),
                          resign: { try? self.sign(method: method, path: path, body: body, serial: serial) })
    }

    /// `answer` when the gateway's own and fresh: a refusal must be signed, a success signed
    /// within 300 s of the local clock; an error status is thrown as the gateway's error.
    private func judged(_ answer: GatewayAnswer, _ endpoint: String) throws(WeChatPayError) -> GatewayAnswer {
        try checkRefusalIsSigned(answer, endpoint)
        try checkStatus(answer, endpoint)
        let now = configuration.clock()
        // Verified first, judged for age after: a genuine answer that is only too old or too new
        // measures this host's clock, and says so.
        let signature = try signatureHeaders(answer, endpoint, now: now, checkingFreshness: false)
        let key = try verificationKey(serial: signature.serial, now: now, allowDownload: true, endpoint, answer)
        do {
            try signature.verify(body: answer.body, with: key)
        } catch {
            throw WeChatPayError(kind: .signature(error), endpoint: endpoint, requestID: answer.requestID)
        }
        recordGatewayClock(signature, now: now)
        let offset = Int((Double(signature.timestamp) - now.timeIntervalSince1970).rounded())
        guard abs(Double(signature.timestamp) - now.timeIntervalSince1970) <= AnswerSignature.maximumSkew else {
            throw WeChatPayError(kind: .signature(.verifiedButStale(offsetSeconds: offset)), endpoint: endpoint, requestID: answer.requestID)
        }
        return answer
    }

    private func recordGatewayClock(_ signature: AnswerSignature, now: Date) {
        if gatewayClock.record(gatewayTimestamp: signature.timestamp, now: now), let offset = gatewayClock.offsetSeconds {
            configuration.events?(.clockOffsetChanged(seconds: offset))
        }
    }

    /// Signs a request; `certificateSerial` is sent as `Wechatpay-Serial` when no public key is configured.
    private func sign(method: String, path: String, body: [UInt8], serial certificateSerial: String?) throws(WeChatPayError) -> SignedRequest {
        let timestamp = Int(configuration.clock().timeIntervalSince1970)
        let authorization: String
        do {
            authorization = try configuration.signer.authorization(
                method: method, pathAndQuery: path, timestamp: timestamp, nonce: SecureRandom.alphanumeric(32), body: body)
        } catch {
            throw WeChatPayError(kind: .local("cannot sign with merchant.private_key_file: \(error)"), endpoint: "\(method) \(path)")
        }
        var headers = [
            "Authorization": authorization,
            "Accept": "application/json",
            "User-Agent": BuildInfo.userAgent,
        ]
        if !body.isEmpty { headers["Content-Type"] = "application/json" }
        if let serial = configuration.publicKey?.id ?? certificateSerial {
            headers["Wechatpay-Serial"] = serial
        }
        return SignedRequest(method: method, pathAndQuery: path, headers: headers, body: body)
    }

    private func checkStatus(_ answer: GatewayAnswer, _ endpoint: String) throws(WeChatPayError) {
        guard !(200...299).contains(answer.status) else { return }
        let fields = answer.errorFields
        throw WeChatPayError(kind: .http(status: answer.status, code: fields.code, message: fields.message, detail: fields.detail),
                             endpoint: endpoint, requestID: answer.requestID, serverDate: answer.date)
    }

    /// An answer that refuses the request (4xx other than 429) changes what the daemon does with
    /// a device, so it must be the gateway's own: its signature must verify (its age is not
    /// checked, so a wrong host clock still reads as the gateway's SIGN_ERROR). 429 and 5xx are
    /// retried whatever their origin.
    private func checkRefusalIsSigned(_ answer: GatewayAnswer, _ endpoint: String) throws(WeChatPayError) {
        guard (400...499).contains(answer.status), answer.status != 429 else { return }
        let now = configuration.clock()
        do throws(SignatureFailure) {
            let signature = try AnswerSignature(answer: answer, now: now, checkingFreshness: false)
            let key: RSAPublicKey
            do {
                key = try verificationKey(serial: signature.serial, now: now, allowDownload: true, endpoint, answer)
            } catch {
                guard case .signature(let failure) = error.kind else { throw SignatureFailure.invalid }
                throw failure
            }
            try signature.verify(body: answer.body, with: key)
            recordGatewayClock(signature, now: now)
        } catch {
            throw WeChatPayError(kind: .unverifiedError(status: answer.status, reason: error), endpoint: endpoint,
                                 requestID: answer.requestID, serverDate: answer.date)
        }
    }

    private func signatureHeaders(_ answer: GatewayAnswer, _ endpoint: String, now: Date,
                                  checkingFreshness: Bool = true) throws(WeChatPayError) -> AnswerSignature {
        do {
            return try AnswerSignature(answer: answer, now: now, checkingFreshness: checkingFreshness)
        } catch {
            throw WeChatPayError(kind: .signature(error), endpoint: endpoint, requestID: answer.requestID, serverDate: answer.date)
        }
    }

    /// The key for `serial`: the configured public key for its id; otherwise a platform
    /// certificate, downloading the set once (rate-limited) when the serial is unknown.
    private func verificationKey(serial: String, now: Date, allowDownload: Bool, _ endpoint: String, _ answer: GatewayAnswer) throws(WeChatPayError) -> RSAPublicKey {
        func failure(_ reason: SignatureFailure) -> WeChatPayError {
            WeChatPayError(kind: .signature(reason), endpoint: endpoint, requestID: answer.requestID)
        }
        if let publicKey = configuration.publicKey, publicKey.id == serial { return publicKey.key }
        guard configuration.apiV3Key != nil, !serial.hasPrefix("PUB_KEY_ID_") else { throw failure(.unknownSerial(serial)) }
        var certificate = certificates.certificate(serial: serial)
        if certificate == nil, allowDownload {
            certificates.refresh(now: now) { () throws(WeChatPayError) in try downloadReportingFailure() }
            certificate = certificates.certificate(serial: serial)
        }
        guard let certificate else { throw failure(.unknownSerial(serial)) }
        guard certificate.isValid(at: now) else { throw failure(.certificateExpired(serial)) }
        return certificate.publicKey
    }

    /// In platform-certificate mode without a public key, downloads the set when none is held or
    /// the last download is older than 12 h (rate-limited; a failure keeps the current set).
    private func refreshCertificatesIfDue() {
        guard configuration.apiV3Key != nil, configuration.publicKey == nil else { return }
        let now = configuration.clock()
        guard certificates.isRefreshDue(at: now) else { return }
        certificates.refresh(now: now) { () throws(WeChatPayError) in try downloadReportingFailure() }
    }

    private func downloadReportingFailure() throws(WeChatPayError) {
        do throws(WeChatPayError) {
            _ = try downloadCertificatesBlocking()
        } catch {
            configuration.events?(.certificateDownloadFailed(error))
            throw error
        }
    }

    private func encode(_ value: some Encodable, _ endpoint: String) throws(WeChatPayError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw WeChatPayError(kind: .local("cannot encode the request: \(error)"), endpoint: endpoint)
        }
    }

    /// What `read` makes of a verified answer's body; a refusal is a malformed answer.
    private func accepted<T>(_ answer: GatewayAnswer, _ endpoint: String,
                             _ read: (GatewayAnswer) throws(WeChatPayAnswerProblem) -> T) throws(WeChatPayError) -> T {
        do {
            return try read(answer)
        } catch {
            throw WeChatPayError(kind: .malformedAnswer(error.reason), endpoint: endpoint, requestID: answer.requestID)
        }
    }
}
