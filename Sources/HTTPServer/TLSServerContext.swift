import COpenSSL
import SystemCalls

/// The LAN listener's TLS settings: a certificate chain and its private key, TLS 1.2 and 1.3
/// only with forward-secret AEAD suites. Owns the `SSL_CTX`; each connection makes its own
/// `SSL` from it (`TLSSession`), and connections made under an older context keep it alive
/// (OpenSSL counts the references), so a reload can swap contexts without dropping anyone.
public final class TLSServerContext: Sendable {
    /// Why a certificate or key was not accepted, in words for the operator.
    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Configured here, never changed after (see `SharedCObject`).
    private let handle: SharedCObject<OpaquePointer>
    var context: OpaquePointer { handle.pointer }

    /// A context serving the PEM chain in `certificateChainFile` (the server's certificate first)
    /// with the PEM private key in `privateKey` (passed as bytes: the caller reads secret files).
    public init(certificateChainFile: String, privateKey: UnsafeRawBufferPointer) throws(SetupError) {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw SetupError(description: "SSL_CTX_new: \(Self.openSSLErrors())") }
        handle = SharedCObject(pointer: context)
        guard authinfod_ssl_server_configure(context) == 1 else { throw SetupError(description: "TLS settings refused: \(Self.openSSLErrors())") }
        guard SSL_CTX_use_certificate_chain_file(context, certificateChainFile) == 1 else {
            throw SetupError(description: "cannot use the certificate chain \(certificateChainFile): \(Self.openSSLErrors())")
        }
        guard let bio = BIO_new_mem_buf(privateKey.baseAddress, Int32(privateKey.count)) else {
            throw SetupError(description: "BIO_new_mem_buf: \(Self.openSSLErrors())")
        }
        defer { BIO_free(bio) }
        guard let key = authinfod_read_private_key(bio) else {
            throw SetupError(description: "the private key is not a PEM private key (or is encrypted): \(Self.openSSLErrors())")
        }
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(context, key) == 1, SSL_CTX_check_private_key(context) == 1 else {
            throw SetupError(description: "the private key does not match the certificate: \(Self.openSSLErrors())")
        }
    }

    deinit { SSL_CTX_free(context) }

    /// This thread's OpenSSL error queue as text, emptied.
    static func openSSLErrors() -> String {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return reasons.isEmpty ? "no detail" : reasons.joined(separator: "; ")
    }
}
