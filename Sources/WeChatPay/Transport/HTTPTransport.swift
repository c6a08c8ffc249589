import FoundationEssentials
import Synchronization
import SystemCalls

/// A signed request ready to send: the same bytes and headers go to the primary and, on a
/// connection-level failure, to the backup domain (the signature covers no host).
struct SignedRequest: Sendable {
    let method: String
    let pathAndQuery: String
    let headers: [String: String]
    let body: [UInt8]

    var endpoint: String { "\(method) \(pathAndQuery.split(separator: "?", maxSplits: 1).first.map(String.init) ?? pathAndQuery)" }
}

/// Sends signed requests over HTTP/1.1 on its own sockets (TLS through libssl for https):
/// keep-alive connections reused per host, a deadline per request covering connect, TLS, send
/// and answer, no cookies, caches, redirects or proxies, and one failover to the backup base URL
/// when the primary cannot be connected to. (URLSession on Linux cost about a millisecond of CPU
/// and kept a few hundred bytes per request; a daemon refreshing thousands of devices cannot.)
///
/// `send` runs an exchange on an idle kept-alive connection without blocking, on `GatewayLoop`;
/// everything else (connecting, the TLS handshake, failover) blocks the thread it runs on: one of
/// `ExchangeThreads` (reused, never shared by two exchanges at once), never a Swift concurrency
/// thread.
final class HTTPTransport: Sendable {
    /// Answers larger than this are refused as malformed (the face-pay answers are a few KiB).
    static let maximumAnswerBytes = 1 << 20
    private let baseURL: URL
    private let backupBaseURL: URL?
    /// Where they point (parsed once; a URL that is not http(s) fails here, at send time).
    private let primary: Result<Target, TransportFailure>
    private let backup: Result<Target, TransportFailure>?
    private let timeout: TimeInterval
    private let trustedCertificatesFile: String?
    /// What that file held when the TLS context was made from it (a reload compares).
    private let trustedCertificatesDigest: [UInt8]?
    /// Idle connections older than this are closed rather than reused.
    private let keepAliveSeconds: TimeInterval
    private let tls: Result<TLSClientContext, CryptoError>?
    private let pool = ConnectionPool()
    /// Gateway connections opened (connected, and through the TLS handshake for https) by every
    /// transport of the process: keep-alive shows as far fewer than requests.
    static let connectionsOpened = Atomic<Int>(0)

    /// Sends to `configuration`'s base URLs with its timeout, keep-alive time and trusted roots.
    init(_ configuration: ClientConfiguration) {
        baseURL = configuration.baseURL
        backupBaseURL = configuration.backupBaseURL
        primary = Result { () throws(TransportFailure) in try Target(configuration.baseURL) }
        backup = configuration.backupBaseURL.map { url in Result { () throws(TransportFailure) in try Target(url) } }
        timeout = configuration.timeout
        keepAliveSeconds = configuration.keepAliveSeconds
        let trustedCertificatesFile = configuration.trustedCertificatesFile
        self.trustedCertificatesFile = trustedCertificatesFile
        trustedCertificatesDigest = trustedCertificatesFile.flatMap(Self.digest(ofFile:))
        let needsTLS = [baseURL, backupBaseURL].contains { $0?.scheme?.lowercased() == "https" }
        tls = needsTLS ? Result { () throws(CryptoError) in try TLSClientContext(trustedCertificatesFile: trustedCertificatesFile) } : nil
    }

    /// Whether this transport sends the way `configuration` asks (so a new client may share its
    /// connections).
    func serves(_ configuration: ClientConfiguration) -> Bool {
        baseURL == configuration.baseURL && backupBaseURL == configuration.backupBaseURL && timeout == configuration.timeout
            && trustedCertificatesFile == configuration.trustedCertificatesFile && keepAliveSeconds == configuration.keepAliveSeconds
            // A CA file rotated in place must be read again: same path is not same trust.
            && trustedCertificatesFile.flatMap(Self.digest(ofFile:)) == trustedCertificatesDigest
    }

    private static func digest(ofFile path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { SHA256.digest([UInt8]($0)) }
    }

    /// Sends `request` to the primary base URL, and once more to the backup when the primary
    /// could not be connected to (refused, unresolvable, or out of time resolving, connecting or
    /// in the TLS handshake). HTTP error statuses are answers, never failed over.
    ///
    /// The whole call, failover included, ends within `timeout`: with a backup, connecting to
    /// the primary may take at most half of it, so the backup keeps the rest.
    ///
    /// `resign` makes a freshly signed copy of the request (new nonce and timestamp) for the one
    /// case where a request may be sent twice: a kept-alive connection that fails before any
    /// answer byte, whose server may have read the request. Without it, that failure is thrown.
    /// Blocks until the answer or the failure: exchange threads only.
    /// `startedAt` (monotonic) is when the call began, when an attempt on the gateway loop came
    /// first; `reusingIdle: false` goes straight to a new connection to the primary.
    func sendBlocking(_ request: SignedRequest, resign: (@Sendable () -> SignedRequest?)? = nil,
                      startedAt: Double = MonotonicClock.now(), reusingIdle: Bool = true) throws(WeChatPayError) -> GatewayAnswer {
        let start = startedAt
        let deadline = start + timeout
        do {
            return try exchange(request, to: primary.get(), deadline: deadline,
                                connectDeadline: backup == nil ? deadline : start + timeout / 2, reusingIdle: reusingIdle, resign: resign)
        } catch let error where error.isConnectionFailure {
            guard let backup else { throw error.wrapped(request) }
            // The primary may have read the request before the connect that failed (a re-send
            // after a kept-alive connection broke): the backup gets it signed afresh.
            let again = resign?() ?? request
            do {
                return try exchange(again, to: backup.get(), deadline: deadline, connectDeadline: deadline, reusingIdle: true, resign: resign)
            } catch let backupError {
                throw WeChatPayError(
                    kind: backupError.kind.failedOver(primary: error.reason),
                    endpoint: request.endpoint)
            }
        } catch {
            throw error.wrapped(request)
        }
    }

    /// Sends `request` as `sendBlocking` does, to `completion` (on the thread that ends it):
    /// on an idle kept-alive connection to the primary through the gateway loop, without holding
    /// a thread while the gateway answers; without one, or when that connection fails before
    /// answering, on an exchange thread (blocking: connect, TLS, failover). Loop thread only.
    func send(_ request: SignedRequest, resign: (@Sendable () -> SignedRequest?)?,
              completion: @escaping @Sendable (Result<GatewayAnswer, WeChatPayError>) -> Void) {
        let start = MonotonicClock.now()
        guard case .success(let target) = primary, let idle = takeIdle(target, now: start) else {
            return ExchangeThreads.shared.run {
                completion(Result { () throws(WeChatPayError) in try self.sendBlocking(request, resign: resign, startedAt: start) })
            }
        }
        GatewayLoop.shared.exchange(target.requestBytes(request), on: idle, deadline: start + timeout, maximumBodyBytes: Self.maximumAnswerBytes) { outcome in
            switch outcome {
            case .answer(let answer, let reusable):
                if reusable && !idle.hasUnreadBytes {
                    idle.idleSince = MonotonicClock.now()
                    self.pool.put(idle, key: target.key)
                }
                completion(.success(answer))
            case .failure(let failure) where failure.stage == .exchange && !failure.answerBegan:
                // As on the blocking path: usually the server had closed the idle connection,
                // but it may have read the request: sent again, freshly signed, on a new one.
                guard let again = resign?() else { return completion(.failure(failure.wrapped(request))) }
                ExchangeThreads.shared.run {
                    completion(Result { () throws(WeChatPayError) in
                        try self.sendBlocking(again, resign: resign, startedAt: start, reusingIdle: false)
                    })
                }
            case .failure(let failure):
                completion(.failure(failure.wrapped(request)))
            }
        }
    }

    /// An idle connection to `target` kept alive for less than `keepAliveSeconds` (older ones
    /// are closed on the way).
    private func takeIdle(_ target: Target, now: Double) -> GatewayConnection? {
        while let idle = pool.take(target.key) {
            if now - idle.idleSince < keepAliveSeconds { return idle }
        }
        return nil
    }

    /// One blocking exchange: on an idle keep-alive connection when there is one (retried once,
    /// freshly signed, on a new connection if it failed before answering), otherwise on a new one,
    /// which must be connected by `connectDeadline`.
    private func exchange(_ request: SignedRequest, to target: Target, deadline: Double, connectDeadline: Double, reusingIdle: Bool,
                          resign: (@Sendable () -> SignedRequest?)?) throws(TransportFailure) -> GatewayAnswer {
        var bytes = target.requestBytes(request)
        if reusingIdle, let idle = takeIdle(target, now: MonotonicClock.now()) {
            do {
                return try exchange(bytes, on: idle, target: target, deadline: deadline)
            } catch let failure where failure.stage == .exchange && !failure.answerBegan {
                // Usually the server had closed the idle connection; but it may have read the
                // request first, and the gateway refuses a nonce it has seen (a replay): never
                // send the same signed bytes twice.
                guard let again = resign?() else { throw failure }
                bytes = target.requestBytes(again)
            }
        }
        let connection = try GatewayConnection(host: target.host, port: target.port, tls: target.secure ? try tlsContext(target) : nil,
                                               deadline: min(deadline, connectDeadline))
        Self.connectionsOpened.add(1, ordering: .relaxed)
        return try exchange(bytes, on: connection, target: target, deadline: deadline)
    }

    private func exchange(_ bytes: [UInt8], on connection: GatewayConnection, target: Target, deadline: Double) throws(TransportFailure) -> GatewayAnswer {
        try connection.write(bytes, deadline: deadline)
        var reader = HTTPAnswerReader(connection: connection, deadline: deadline, maximumBodyBytes: Self.maximumAnswerBytes)
        let (answer, reusable) = try reader.read()
        if reusable && !connection.hasUnreadBytes {
            connection.idleSince = MonotonicClock.now()
            pool.put(connection, key: target.key)
        }
        return answer
    }

    private func tlsContext(_ target: Target) throws(TransportFailure) -> TLSClientContext {
        switch tls {
        case .success(let context): return context
        case .failure(let error): throw TransportFailure(.connect, "TLS: cannot load the trusted certificates (\(error))", host: target.host)
        case nil: throw TransportFailure(.connect, "TLS is not set up for \(target.key)", host: target.host)
        }
    }

    /// Where a base URL points, and the bytes of a request to it.
    struct Target: Sendable {
        let secure: Bool
        let host: String
        let port: UInt16
        let pathPrefix: String
        var key: String { "\(secure ? "https" : "http")://\(host):\(port)" }

        init(_ base: URL) throws(TransportFailure) {
            let scheme = base.scheme?.lowercased() ?? ""
            guard scheme == "https" || scheme == "http", let host = base.host, !host.isEmpty else {
                throw TransportFailure(.connect, "cannot send to \(base): not an http(s) URL", host: base.host ?? "")
            }
            secure = scheme == "https"
            self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            port = UInt16(base.port ?? (secure ? 443 : 80))
            pathPrefix = base.path.trimmingSuffix("/")
        }

        /// The request on the wire, built byte by byte (it is on every refresh's path).
        func requestBytes(_ request: SignedRequest) -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(640 + request.body.count)
            bytes += request.method.utf8
            bytes.append(0x20)
            bytes += pathPrefix.utf8
            bytes += request.pathAndQuery.utf8
            bytes += " HTTP/1.1\r\nHost: ".utf8
            if host.utf8.contains(UInt8(ascii: ":")) {
                bytes += "[\(host)]".utf8
            } else {
                bytes += host.utf8
            }
            if port != (secure ? 443 : 80) { bytes += ":\(port)".utf8 }
            bytes += [13, 10]
            for (name, value) in request.headers.sorted(by: { $0.key < $1.key }) {
                precondition(!name.utf8.contains(where: Self.isLineBreak) && !value.utf8.contains(where: Self.isLineBreak), "header \(name) holds a line break")
                bytes += name.utf8
                bytes += [0x3A, 0x20]
                bytes += value.utf8
                bytes += [13, 10]
            }
            if !request.body.isEmpty || request.method != "GET" { bytes += "Content-Length: \(request.body.count)\r\n".utf8 }
            bytes += [13, 10]
            bytes += request.body
            return bytes
        }

        private static func isLineBreak(_ byte: UInt8) -> Bool { byte == 13 || byte == 10 }
    }
}

/// Idle keep-alive connections by host. Shared by the exchange threads, so it sits behind a
/// `Mutex`; a connection is in the pool or in one exchange, never both.
final class ConnectionPool: Sendable {
    static let maximumIdlePerHost = 32
    private let idle = Mutex<[String: [GatewayConnection]]>([:])

    func take(_ key: String) -> GatewayConnection? {
        idle.withLock { $0[key]?.popLast() }
    }

    func put(_ connection: GatewayConnection, key: String) {
        idle.withLock { idle in
            if idle[key, default: []].count < Self.maximumIdlePerHost { idle[key, default: []].append(connection) }
        }
    }
}

/// A failure before a complete answer, kept apart from `WeChatPayError` so failover can tell
/// connection-level failures (the request never reached the gateway) from the rest.
struct TransportFailure: Error {
    enum Stage {
        /// Resolving, connecting or the TLS handshake: nothing was sent, so resending is safe.
        case connect
        /// The same, out of time (a DNS server or a host that does not answer).
        case connectTimeout
        /// Sending the request or reading the answer.
        case exchange
        case timeout
        /// The answer was larger than `HTTPTransport.maximumAnswerBytes`.
        case oversized
    }

    let stage: Stage
    let reason: String
    let host: String
    /// Whether any byte of an answer had arrived when the exchange failed.
    var answerBegan = false

    init(_ stage: Stage, _ reason: String, host: String) {
        self.stage = stage
        self.reason = reason
        self.host = host
    }

    var isConnectionFailure: Bool { stage == .connect || stage == .connectTimeout }

    var kind: WeChatPayError.Kind {
        switch stage {
        case .oversized: .malformedAnswer(reason)
        case .timeout: .timeout
        case .connect, .connectTimeout, .exchange: .transport("\(host): \(reason)")
        }
    }

    func wrapped(_ request: SignedRequest) -> WeChatPayError {
        WeChatPayError(kind: kind, endpoint: request.endpoint)
    }
}

extension WeChatPayError.Kind {
    func failedOver(primary: String) -> Self {
        if case .transport(let reason) = self { return .transport("primary: \(primary); backup \(reason)") }
        return self
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
