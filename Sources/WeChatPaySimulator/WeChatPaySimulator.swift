import Dispatch
import FoundationEssentials
import HTTPServer
import SystemCalls
import Synchronization
import WeChatPay

/// A stand-in for the WeChat Pay gateway on loopback, for tests and `authinfod demo`.
///
/// It checks request signatures like the gateway (merchant public key, 5-minute timestamp
/// window, nonce replay, the exact header format), answers `POST /v3/offlineface/authinfo`,
/// `POST /v3/offlinefacemch/tokens` and `GET /v3/certificates`, signs every answer with its
/// platform key, and misbehaves on request (`fault`, `reject(deviceID:…)`). Thread-safe.
///
/// ```swift
/// let gateway = try WeChatPaySimulator(merchant: .init(mchid: "1900000109", serialNumber: serial, publicKey: key))
/// gateway.fault = .serverError
/// #expect(gateway.requests(path: WeChatPayClient.authInfoPath).count == 1)
/// ```
public final class WeChatPaySimulator: Sendable {
    /// The merchant the simulator accepts requests from.
    public struct Merchant: Sendable {
        public let mchid: String
        public let serialNumber: String
        public let publicKey: RSAPublicKey

        public init(mchid: String, serialNumber: String, publicKey: RSAPublicKey) {
            self.mchid = mchid
            self.serialNumber = serialNumber
            self.publicKey = publicKey
        }
    }

    struct State {
        var fault: SimulatorFault = .none
        var rejections: [String: (status: Int, code: String, message: String)] = [:]
        var credentials: SimulatorCredentials
        var signingMode: SimulatorSigningMode
        var expiresIn: Int?
        var log: [SimulatorRequestRecord] = []
        var issued: [String: [String]] = [:]
        var seenNonces: Set<String> = []
        /// `seenNonces` in arrival order from `nonceHead`, so expired ones leave in O(1) each.
        var nonceOrder: [(at: Double, nonce: String)] = []
        var nonceHead = 0
        var listening = true
        var counter = 0
        var inFlight = 0
        var maxInFlight = 0
        var delays: [String: Double] = [:]
        /// raw_data values refused as invalid or expired.
        var rejectedRawData: Set<String> = []
        /// Seconds the gateway's clock is ahead of this machine's (negative: behind).
        var clockSkew = 0.0
    }

    public let merchant: Merchant
    public let host: String
    public let port: UInt16
    private let server: HTTPServer
    private let state: Mutex<State>
    /// A key that is not the platform key, for `.forgedSignature`; generated once per process.
    private static let forgeryKey: RSAPrivateKey = try! RSAPrivateKey(generatingBits: 2048)

    /// Starts a simulator on `host` (loopback), on `port` (0 picks a free one).
    /// `idleTimeout`: seconds a kept-alive connection may stay idle (and a request may take to
    /// arrive) before the simulator closes it. With `tls`, it speaks https only.
    public init(merchant: Merchant, credentials: SimulatorCredentials? = nil, signingMode: SimulatorSigningMode = .publicKey,
                expiresIn: Int? = 3600, host: String = "127.0.0.1", port: UInt16 = 0, idleTimeout: Double = 10,
                tls: TLSServerContext? = nil) throws {
        self.merchant = merchant
        self.host = host
        let credentials = try credentials ?? SimulatorCredentials.generate()
        let state = Mutex(State(credentials: credentials, signingMode: signingMode, expiresIn: expiresIn))
        self.state = state
        let box = HandlerBox()
        var configuration = HTTPServer.Configuration()
        configuration.requestTimeout = idleTimeout
        server = HTTPServer(label: "wechatpay-simulator", configuration: configuration) { request, responder in box.handle(request, responder) }
        self.port = try server.listen(on: .tcp(host: host, port: port), tls: tls).port
        box.simulator = self
    }

    deinit { server.shutdown() }

    /// `http://host:port`: what a test config uses as `api.base_url`.
    public var baseURL: URL { URL(string: "http://\(host.contains(":") ? "[\(host)]" : host):\(port)")! }

    /// The gateway's current keys (for writing the merchant's `pub_key.pem` and APIv3 key).
    public var credentials: SimulatorCredentials { state.withLock { $0.credentials } }

    /// The current fault; setting `.down` closes the listener and every connection, clearing it
    /// listens again on the same port.
    public var fault: SimulatorFault {
        get { state.withLock { $0.fault } }
        set {
            let (wasListening, shouldListen) = state.withLock { state -> (Bool, Bool) in
                state.fault = newValue
                let was = state.listening
                state.listening = newValue != .down
                return (was, state.listening)
            }
            // Down means down: open keep-alive connections are dropped too.
            if wasListening && !shouldListen { server.shutdown() }
            if !wasListening && shouldListen { _ = try? server.listen(on: .tcp(host: host, port: port)) }
        }
    }

    /// How answers are signed: the WeChat Pay public key or the platform certificate.
    public var signingMode: SimulatorSigningMode {
        get { state.withLock { $0.signingMode } }
        set { state.withLock { $0.signingMode = newValue } }
    }

    /// `expires_in` sent with each authinfo, or nil to leave it out.
    public var expiresIn: Int? {
        get { state.withLock { $0.expiresIn } }
        set { state.withLock { $0.expiresIn = newValue } }
    }

    /// Refuses authinfo for `deviceID` with this status and gateway code until `accept(deviceID:)`.
    public func reject(deviceID: String, status: Int = 400, code: String = "PARAM_ERROR", message: String = "device_id is not registered for this sub-merchant") {
        state.withLock { $0.rejections[deviceID] = (status, code, message) }
    }

    /// Answers authinfo requests for `deviceID` only after `seconds` (nil: at once again).
    public func delay(deviceID: String, seconds: Double?) {
        state.withLock { $0.delays[deviceID] = seconds }
    }

    /// Refuses authinfo requests carrying `rawData` the way the gateway refuses a stale or foreign
    /// raw_data (signed 400 PARAM_ERROR "无效的RawData数据"), whatever the device.
    public func rejectRawData(_ rawData: String) {
        state.withLock { _ = $0.rejectedRawData.insert(rawData) }
    }

    /// Seconds the gateway's clock runs ahead of this machine's (negative: behind): it judges
    /// request timestamps and stamps its answers by that clock.
    public var clockSkew: Double {
        get { state.withLock { $0.clockSkew } }
        set { state.withLock { $0.clockSkew = newValue } }
    }

    /// Authinfo requests received for `deviceID` (answered or not).
    public func authInfoRequestCount(deviceID: String) -> Int {
        state.withLock { $0.log.filter { $0.path == WeChatPayClient.authInfoPath && $0.deviceID == deviceID }.count }
    }

    /// Undoes `reject(deviceID:)`.
    public func accept(deviceID: String) {
        state.withLock { $0.rejections[deviceID] = nil }
    }

    /// Issues a new platform certificate (new serial); answers are signed under it from now on.
    public func rotateCertificate() throws {
        let rotated = try credentials.rotatingCertificate()
        state.withLock { $0.credentials = rotated }
    }

    /// Every request received so far, optionally only those for `path`.
    public func requests(path: String? = nil) -> [SimulatorRequestRecord] {
        state.withLock { state in path.map { path in state.log.filter { $0.path == path } } ?? state.log }
    }

    /// Every authinfo value issued to `deviceID`, oldest first.
    public func issuedAuthInfo(deviceID: String) -> [String] {
        state.withLock { $0.issued[deviceID] ?? [] }
    }

    /// Whether `value` is an authinfo this simulator issued to `deviceID`.
    public func didIssue(_ value: String, to deviceID: String) -> Bool {
        state.withLock { $0.issued[deviceID]?.contains(value) ?? false }
    }

    /// Client connections open now (keep-alive ones included).
    public var openConnections: Int { server.connectionCount }

    /// Stops listening and closes every connection.
    public func stop() { server.shutdown() }

    // MARK: - Answering

    fileprivate func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let (fault, answer, delay) = state.withLock { state -> (SimulatorFault, Answer, Double?) in
            let local = Date().timeIntervalSince1970
            let now = local + state.clockSkew
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            let (answer, deviceID) = self.answer(request, now: now, state: &state)
            let rawData = deviceID == nil ? nil : (try? JSONParser.parse(request.body))?[member: "raw_data"]?.string
            state.log.append(SimulatorRequestRecord(method: request.method, path: request.path, deviceID: deviceID, rawData: rawData,
                                                    status: answer.status, at: local))
            let fault = state.fault
            if fault == .hangUpOnceAfterReading { state.fault = .none }
            return (fault, answer, deviceID.flatMap { state.delays[$0] })
        }
        if fault == .hangUpOnceAfterReading {
            state.withLock { $0.inFlight -= 1 }
            return responder.hangUp()
        }
        let response = sign(answer, fault: fault)
        let finish: @Sendable () -> Void = { [self] in
            self.state.withLock { $0.inFlight -= 1 }
            responder.respond(response)
        }
        if case .slow(let seconds) = fault {
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: finish)
        } else if let delay {
            DispatchQueue.global().asyncAfter(deadline: .now() + delay, execute: finish)
        } else {
            finish()
        }
    }

    /// The most requests this simulator has had in hand at once (observable with `.slow`).
    public var maximumConcurrentRequests: Int { state.withLock { $0.maxInFlight } }

    /// Forgets the concurrency high-water mark.
    public func resetConcurrency() { state.withLock { $0.maxInFlight = $0.inFlight } }

    struct Answer {
        var status: Int
        var body: String
    }

    private func answer(_ request: HTTPRequest, now: Double, state: inout State) -> (Answer, String?) {
        switch state.fault {
        case .serverError: return (error(500, "SYSTEM_ERROR", "系统错误 (simulated)"), nil)
        case .rateLimited: return (error(429, "FREQUENCY_LIMITED", "请求频率超限 (simulated)"), nil)
        case .garbageBody: return (Answer(status: 200, body: "<html>gateway maintenance</html>"), nil)
        case .unsignedError(let status): return (error(status, "PARAM_ERROR", "无效的RawData数据"), nil)
        default: break
        }
        if let problem = checkSignature(request, now: now, state: &state) { return (problem, nil) }
        switch (request.method, request.path) {
        case ("POST", WeChatPayClient.authInfoPath): return authinfo(request, state: &state)
        case ("POST", WeChatPayClient.tokensPath): return (token(request, state: &state), nil)
        case ("GET", WeChatPayClient.certificatesPath): return (certificates(state: state), nil)
        default: return (error(404, "NOT_FOUND", "no such API: \(request.method) \(request.path)"), nil)
        }
    }

    /// The gateway's request checks; nil when the request is properly signed.
    private func checkSignature(_ request: HTTPRequest, now: Double, state: inout State) -> Answer? {
        guard request.header("User-Agent")?.isEmpty == false else { return error(400, "PARAM_ERROR", "User-Agent header is required") }
        guard let header = request.header("Authorization"), let authorization = AuthorizationHeader(header) else {
            return error(401, "SIGN_ERROR", "Authorization header is missing or malformed")
        }
        guard authorization.mchid == merchant.mchid else { return error(401, "SIGN_ERROR", "mchid does not match the merchant certificate") }
        guard authorization.serialNumber == merchant.serialNumber else {
            return error(401, "SIGN_ERROR", "serial_no is not the merchant's API certificate serial")
        }
        guard authorization.timestamp.utf8.count == 10, let timestamp = Double(authorization.timestamp) else {
            return error(401, "SIGN_ERROR", "timestamp must be Unix seconds (10 digits)")
        }
        guard abs(now - timestamp) <= 300 else {
            return error(401, "SIGN_ERROR", "timestamp is more than 5 minutes from the gateway clock (请求时间戳过期)")
        }
        guard authorization.nonce.utf8.count == 32, authorization.nonce.utf8.allSatisfy(Self.isAlphanumeric) else {
            return error(401, "SIGN_ERROR", "nonce_str must be 32 characters of [0-9A-Za-z]")
        }
        while state.nonceHead < state.nonceOrder.count, now - state.nonceOrder[state.nonceHead].at > 600 {
            state.seenNonces.remove(state.nonceOrder[state.nonceHead].nonce)
            state.nonceHead += 1
        }
        if state.nonceHead > 4096, state.nonceHead * 2 > state.nonceOrder.count {
            state.nonceOrder.removeFirst(state.nonceHead)
            state.nonceHead = 0
        }
        guard !state.seenNonces.contains(authorization.nonce) else { return error(401, "SIGN_ERROR", "nonce_str was already used (replay)") }
        let message = RequestSigner.message(method: request.method, pathAndQuery: request.target, timestamp: Int(timestamp),
                                            nonce: authorization.nonce, body: request.body)
        guard let signature = Data(base64Encoded: authorization.signature),
              merchant.publicKey.isValidSignature(Array(signature), for: message) else {
            return error(401, "SIGN_ERROR", "签名错误，请检查后再试 (signature does not verify with the merchant certificate)")
        }
        state.seenNonces.insert(authorization.nonce)
        state.nonceOrder.append((now, authorization.nonce))
        return nil
    }

    private func authinfo(_ request: HTTPRequest, state: inout State) -> (Answer, String?) {
        guard let body = try? JSONParser.parse(request.body), case .object = body else {
            return (error(400, "PARAM_ERROR", "body is not a JSON object"), nil)
        }
        var fields: [String: String] = [:]
        for field in ["sp_appid", "sub_mchid", "device_id", "raw_data", "organization_id"] {
            guard let value = body[member: field]?.string, !value.isEmpty else { return (error(400, "PARAM_ERROR", "\(field) is required"), nil) }
            fields[field] = value
        }
        if let subAppID = body[member: "sub_appid"], subAppID.string == nil { return (error(400, "PARAM_ERROR", "sub_appid must be a string"), nil) }
        let deviceID = fields["device_id"]!
        if let rejection = state.rejections[deviceID] { return (error(rejection.status, rejection.code, rejection.message), deviceID) }
        if state.rejectedRawData.contains(fields["raw_data"]!) { return (error(400, "PARAM_ERROR", "无效的RawData数据"), deviceID) }
        state.counter += 1
        let value = "SIMAUTH-\(deviceID)-\(state.counter)-\(SecureRandom.alphanumeric(24))"
        state.issued[deviceID, default: []].append(value)
        var answer: [(key: String, value: JSONValue)] = [("authinfo", .string(value))]
        if let expiresIn = state.expiresIn { answer.append(("expires_in", .number(Double(expiresIn)))) }
        return (Answer(status: 200, body: json(.object(answer))), deviceID)
    }

    private func token(_ request: HTTPRequest, state: inout State) -> Answer {
        guard let body = try? JSONParser.parse(request.body),
              body[member: "scene"]?.string == "WEBSESSION",
              let initData = body[member: "web_init_data"],
              initData[member: "out_user_id"]?.string?.isEmpty == false,
              initData[member: "organization_id"]?.string?.isEmpty == false else {
            return error(400, "PARAM_ERROR", "scene must be WEBSESSION with web_init_data.out_user_id and organization_id")
        }
        state.counter += 1
        return Answer(status: 200, body: json(.object([("token", .string("SIMTOKEN-\(state.counter)-\(SecureRandom.alphanumeric(24))"))])))
    }

    private func certificates(state: State) -> Answer {
        guard state.signingMode == .platformCertificate else {
            return error(404, "RESOURCE_NOT_EXISTS", "this merchant uses the WeChat Pay public key; no platform certificates")
        }
        let certificate = state.credentials.certificate
        let nonce = SecureRandom.alphanumeric(12)
        let key = SecretBytes(Array(state.credentials.apiV3Key.utf8))
        guard let sealed = try? AESGCM.seal(Array(certificate.pem.utf8), key: key, nonce: Array(nonce.utf8), associatedData: Array("certificate".utf8)) else {
            return error(500, "SYSTEM_ERROR", "simulator could not encrypt its certificate")
        }
        // The gateway writes times in China Standard Time: 2026-12-03T19:35:18+08:00.
        let chinaTime = Date.ISO8601FormatStyle(timeZoneSeparator: .colon, timeZone: TimeZone(secondsFromGMT: 8 * 3600)!)
        let item: JSONValue = .object([
            ("serial_no", .string(certificate.serialNumber)),
            ("effective_time", .string(certificate.notBefore.formatted(chinaTime))),
            ("expire_time", .string(certificate.notAfter.formatted(chinaTime))),
            ("encrypt_certificate", .object([
                ("algorithm", .string("AEAD_AES_256_GCM")), ("nonce", .string(nonce)), ("associated_data", .string("certificate")),
                ("ciphertext", .string(Data(sealed).base64EncodedString())),
            ])),
        ])
        return Answer(status: 200, body: json(.object([("data", .array([item]))])))
    }

    private func error(_ status: Int, _ code: String, _ message: String) -> Answer {
        Answer(status: status, body: json(.object([("code", .string(code)), ("message", .string(message))])))
    }

    private func json(_ value: JSONValue) -> String { value.text(sortedKeys: true) }

    /// Adds the gateway's signature headers (or the fault's version of them) to an answer.
    private func sign(_ answer: Answer, fault: SimulatorFault) -> HTTPResponse {
        let (credentials, mode, skew) = state.withLock { ($0.credentials, $0.signingMode, $0.clockSkew) }
        let body = Array(answer.body.utf8)
        var timestamp = Int(Date().timeIntervalSince1970 + skew)
        if fault == .staleTimestamp { timestamp -= 600 }
        let nonce = SecureRandom.alphanumeric(32)
        let message = AnswerSignature.message(timestamp: String(timestamp), nonce: nonce, body: body)
        let key = fault == .forgedSignature ? Self.forgeryKey : credentials.platformKey
        var signature = (try? key.sign(message)).map { Data($0).base64EncodedString() } ?? ""
        if fault == .signTest { signature = AnswerSignature.signTestPrefix + signature }
        var headers: [(name: String, value: String)] = [
            ("Content-Type", "application/json"),
            ("Request-ID", "SIM-" + SecureRandom.hex(12)),
            ("Date", HTTPDateText.format(Int(Date().timeIntervalSince1970))),
        ]
        if fault != .missingSignature, !{ if case .unsignedError = fault { true } else { false } }() {
            headers += [
                ("Wechatpay-Timestamp", String(timestamp)),
                ("Wechatpay-Nonce", nonce),
                ("Wechatpay-Signature", signature),
                ("Wechatpay-Serial", mode == .publicKey ? credentials.publicKeyID : credentials.certificate.serialNumber),
                ("Wechatpay-Signature-Type", RequestSigner.scheme),
            ]
        }
        return HTTPResponse(status: answer.status, headers: headers, body: body)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }
}

/// Lets the server's handler reach the simulator, which is created after the server. Weak, so
/// the simulator (which owns the server, which owns the handler) can be released.
private final class HandlerBox: Sendable {
    private struct WeakReference {
        weak var simulator: WeChatPaySimulator?
    }

    private let target = Mutex(WeakReference())

    var simulator: WeChatPaySimulator? {
        get { target.withLock { $0.simulator } }
        set { target.withLock { $0.simulator = newValue } }
    }

    func handle(_ request: HTTPRequest, _ responder: HTTPResponder) {
        guard let simulator else { return responder.respond(.error(503, "starting")) }
        simulator.handle(request, responder)
    }
}
