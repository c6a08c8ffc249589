import COpenSSL
import Glibc
import SystemCalls

/// One TCP connection to a gateway host, TLS when `tls` is given. Owns the socket and the `SSL`;
/// every operation is bounded by a deadline (monotonic seconds) and reports a `TransportFailure`.
///
/// `@unchecked Sendable` only so the pool can hand it between exchange threads: one exchange
/// uses it at a time (it is in the pool or with exactly one exchange, never both), and every
/// hand-over goes through the pool's `Mutex`, which orders one thread's last use before the
/// next thread's first.
final class GatewayConnection: @unchecked Sendable {
    let host: String
    private let fd: Int32
    private var ssl: OpaquePointer?
    /// When the connection was last handed back (monotonic), to retire idle ones.
    var idleSince = 0.0
    /// What `read` reads into: allocated once per connection, not per read.
    private var chunk = [UInt8](repeating: 0, count: 16 * 1024)

    /// Resolves `host`, connects to its first address that answers, and completes the TLS
    /// handshake (peer certificate and host name verified), all before `deadline`. Failing or
    /// running out of time here is a connect-stage failure: nothing was sent, so the request may
    /// go to the backup domain.
    init(host: String, port: UInt16, tls: TLSClientContext?, deadline: Double) throws(TransportFailure) {
        self.host = host
        let addresses = try Resolver.resolve(host, port: port, deadline: deadline)
        var lastError = "no address"
        var connected: Int32 = -1
        for address in addresses where connected < 0 {
            let candidate = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard candidate >= 0 else { lastError = SystemError.last("socket").reason; continue }
            if address.withSocketAddress({ Glibc.connect(candidate, $0, $1) }) == 0 || errno == EINPROGRESS {
                do throws(TransportFailure) {
                    try Self.wait(candidate, events: Int16(POLLOUT), until: deadline, host: host, stage: .connect)
                    var code: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(candidate, SOL_SOCKET, SO_ERROR, &code, &length)
                    if code == 0 { connected = candidate; break }
                    lastError = code == ECONNREFUSED ? "connection refused" : SystemError.reason(code)
                } catch {
                    Glibc.close(candidate)
                    throw error
                }
            } else {
                lastError = errno == ECONNREFUSED ? "connection refused" : SystemError.last("connect").reason
            }
            Glibc.close(candidate)
        }
        guard connected >= 0 else { throw TransportFailure(.connect, lastError, host: host) }
        fd = connected
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let tls { try handshake(tls, deadline: deadline) }
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        Glibc.close(fd)
    }

    private func handshake(_ tls: TLSClientContext, deadline: Double) throws(TransportFailure) {
        guard let ssl = SSL_new(tls.context) else { throw TransportFailure(.connect, "TLS: \(CryptoError.openSSL("SSL_new"))", host: host) }
        self.ssl = ssl
        guard SSL_set_fd(ssl, fd) == 1, authinfod_ssl_set_sni(ssl, host) == 1, SSL_set1_host(ssl, host) == 1 else {
            throw TransportFailure(.connect, "TLS: \(CryptoError.openSSL("SSL_set1_host"))", host: host)
        }
        while true {
            // SSL_get_error reads this thread's error queue: it must start empty (threads are reused).
            ERR_clear_error()
            let result = SSL_connect(ssl)
            if result == 1 { return }
            let code = SSL_get_error(ssl, result)
            switch code {
            case SSL_ERROR_WANT_READ: try Self.wait(fd, events: Int16(POLLIN), until: deadline, host: host, stage: .connect)
            case SSL_ERROR_WANT_WRITE: try Self.wait(fd, events: Int16(POLLOUT), until: deadline, host: host, stage: .connect)
            default:
                let verify = SSL_get_verify_result(ssl)
                let reason = verify != X509_V_OK ? "certificate not trusted: " + String(cString: X509_verify_cert_error_string(verify))
                    : drainErrorQueue() ?? "handshake failed"
                throw TransportFailure(.connect, "TLS handshake failed (\(reason))", host: host)
            }
        }
    }

    /// The socket, for an event loop to watch.
    var descriptor: Int32 { fd }

    /// Whether anything is waiting beyond the answer just read (bytes decrypted by TLS and not
    /// yet read, or on a plain socket: bytes, the end of the stream, an error). Such a
    /// connection is not reused: the next exchange would take those bytes for its answer.
    var hasUnreadBytes: Bool {
        if let ssl { return SSL_pending(ssl) > 0 }
        var byte: UInt8 = 0
        errno = 0
        let count = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return count >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
    }

    /// What a send or receive that does not wait did.
    enum Progress {
        /// Moved this many bytes (more than zero).
        case moved(Int)
        /// Nothing moves until the socket has these `poll` events (`POLLIN`, `POLLOUT`): TLS may
        /// need to read to write, or write to read.
        case blocked(Int16)
        /// The peer ended the stream (receiving only).
        case ended
    }

    /// Sends all of `bytes` before `deadline`.
    func write(_ bytes: [UInt8], deadline: Double) throws(TransportFailure) {
        var offset = 0
        while offset < bytes.count {
            switch try sendSome(bytes, from: offset) {
            case .moved(let count): offset += count
            case .blocked(let events): try Self.wait(fd, events: events, until: deadline, host: host, stage: .exchange)
            case .ended: throw TransportFailure(.exchange, "connection closed", host: host)
            }
        }
    }

    /// Reads what is available into `buffer` (appending), waiting until `deadline`; returns the
    /// byte count, 0 at the end of the stream.
    func read(into buffer: inout [UInt8], deadline: Double) throws(TransportFailure) -> Int {
        while true {
            switch try receiveSome(into: &buffer) {
            case .moved(let count): return count
            case .ended: return 0
            case .blocked(let events): try Self.wait(fd, events: events, until: deadline, host: host, stage: .exchange)
            }
        }
    }

    /// Sends what the socket takes now of `bytes[offset...]`, without waiting. With TLS, a
    /// blocked send must be repeated with the same bytes.
    func sendSome(_ bytes: [UInt8], from offset: Int) throws(TransportFailure) -> Progress {
        ERR_clear_error()
        errno = 0
        let written: Int = bytes.withUnsafeBytes { raw in
            let start = raw.baseAddress! + offset
            if let ssl { return Int(SSL_write(ssl, start, Int32(min(raw.count - offset, Int(Int32.max))))) }
            return send(fd, start, raw.count - offset, Int32(MSG_NOSIGNAL))
        }
        if written > 0 { return .moved(written) }
        return try blocked(after: written, reading: false)
    }

    /// Appends to `buffer` what has arrived, without waiting.
    func receiveSome(into buffer: inout [UInt8]) throws(TransportFailure) -> Progress {
        ERR_clear_error()
        errno = 0
        let count: Int = chunk.withUnsafeMutableBytes { raw in
            if let ssl { return Int(SSL_read(ssl, raw.baseAddress, Int32(raw.count))) }
            return recv(fd, raw.baseAddress, raw.count, 0)
        }
        if count > 0 {
            buffer += chunk[0..<count]
            return .moved(count)
        }
        if count == 0 && ssl == nil { return .ended }
        if let ssl, SSL_get_error(ssl, Int32(count)) == SSL_ERROR_ZERO_RETURN { return .ended }
        if let ssl, SSL_get_error(ssl, Int32(count)) == SSL_ERROR_SYSCALL, errno == 0 { return .ended }
        return try blocked(after: count, reading: true)
    }

    /// After a read or write that moved nothing: what the socket must become ready for when it
    /// would block, otherwise what went wrong.
    private func blocked(after result: Int, reading: Bool) throws(TransportFailure) -> Progress {
        if let ssl {
            switch SSL_get_error(ssl, Int32(result)) {
            case SSL_ERROR_WANT_READ: return .blocked(Int16(POLLIN))
            case SSL_ERROR_WANT_WRITE: return .blocked(Int16(POLLOUT))
            case SSL_ERROR_SYSCALL where errno != 0:
                throw TransportFailure(.exchange, "connection failed: \(SystemError.last("recv").reason)", host: host)
            default:
                throw TransportFailure(.exchange, "TLS failed: \(drainErrorQueue() ?? "connection closed")", host: host)
            }
        }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .blocked(Int16(reading ? POLLIN : POLLOUT)) }
        throw TransportFailure(.exchange, "connection failed: \(SystemError.last("send").reason)", host: host)
    }

    /// Waits for `events` on `fd` until `deadline`; a timeout throws `.connectTimeout` while
    /// connecting, `.timeout` afterwards.
    private static func wait(_ fd: Int32, events: Int16, until deadline: Double, host: String, stage: TransportFailure.Stage) throws(TransportFailure) {
        while true {
            let remaining = deadline - MonotonicClock.now()
            guard remaining > 0 else {
                if stage == .connect { throw TransportFailure(.connectTimeout, "connecting timed out", host: host) }
                throw TransportFailure(.timeout, "timed out", host: host)
            }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, Int32(min(remaining * 1000 + 1, Double(Int32.max))))
            if ready > 0 { return }
            if ready < 0 && errno != EINTR {
                throw TransportFailure(stage, SystemError.last("poll").description, host: host)
            }
        }
    }
}
