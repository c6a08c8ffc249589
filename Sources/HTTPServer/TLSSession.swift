import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// TLS on one accepted, non-blocking connection: the handshake, then reads and writes that may
/// each ask to wait for the socket to become readable or writable. Lives on the loop thread
/// with its connection; owns the `SSL`.
final class TLSSession {
    enum Progress {
        /// Done: `count` bytes moved (or the handshake completed).
        case done(Int)
        /// Call again once the socket is readable.
        case wantRead
        /// Call again once the socket is writable.
        case wantWrite
        /// The peer closed the TLS session.
        case closed
        case failed(String)
    }

    private let ssl: OpaquePointer
    private(set) var established = false

    init?(context: TLSServerContext, fd: Int32) {
        guard let ssl = SSL_new(context.context) else { return nil }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    func handshake() -> Progress {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            established = true
            return .done(0)
        }
        return progress(result)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Progress {
        ERR_clear_error()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        return result > 0 ? .done(Int(result)) : progress(result)
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Progress {
        ERR_clear_error()
        let result = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        return result > 0 ? .done(Int(result)) : progress(result)
    }

    /// Whether the session holds bytes not yet returned by `read` (decrypted or still to decrypt).
    var hasPending: Bool { SSL_has_pending(ssl) == 1 }

    /// Sends close_notify if it can without waiting; the connection closes either way.
    func shutdown() {
        guard established else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
    }

    private func progress(_ result: Int32) -> Progress {
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL where errno == 0 || errno == ECONNRESET || errno == EPIPE: return .closed
        default: return .failed(TLSServerContext.openSSLErrors())
        }
    }
}
