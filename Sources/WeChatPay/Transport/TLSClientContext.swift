import SystemCalls
import COpenSSL

/// The TLS settings every gateway connection shares: TLS 1.2 or newer, the peer verified against
/// the system's trusted roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured, or `trustedCertificatesFile`),
/// and, per connection, the host name checked and sent as SNI. Owns the `SSL_CTX`.
final class TLSClientContext: Sendable {
    /// Configured here, never changed after (see `SharedCObject`).
    private let handle: SharedCObject<OpaquePointer>
    var context: OpaquePointer { handle.pointer }

    init(trustedCertificatesFile: String? = nil) throws(CryptoError) {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw CryptoError.openSSL("SSL_CTX_new") }
        handle = SharedCObject(pointer: context)
        guard authinfod_ssl_ctx_configure(context) == 1 else { throw CryptoError.openSSL("SSL_CTX_set_min_proto_version") }
        let loaded = trustedCertificatesFile.map { SSL_CTX_load_verify_locations(context, $0, nil) } ?? SSL_CTX_set_default_verify_paths(context)
        guard loaded == 1 else { throw CryptoError.openSSL("loading the trusted certificates") }
    }

    deinit { SSL_CTX_free(context) }
}
