import COpenSSL
import Synchronization
import SystemCalls

/// `EVP_PKEY_CTX`s of one RSA key set up once for one operation (SHA256withRSA, PKCS#1 v1.5
/// sign or verify) and reused, the way `openssl speed` signs: the per-call setup that
/// `EVP_DigestSignInit` does (fetching the signature and digest implementations, making a
/// context) is paid once per context, not once per signature.
///
/// A context is used by one thread at a time: `withContext` takes it out of the pool, and puts
/// it back only when the operation succeeded (a failed one may leave it in any state, so it is
/// freed). The pool holds as many contexts as threads ever used it at once. Idle contexts are
/// kept as addresses, since a context is handed from thread to thread, never shared.
final class KeyOperationPool: Sendable {
    enum Operation: Sendable {
        case sign, verify
    }

    private let key: SharedCObject<OpaquePointer>
    private let operation: Operation
    private let idle = Mutex<[Int]>([])

    /// Contexts for `operation` with `key`, which the owner keeps alive as long as the pool.
    init(key: SharedCObject<OpaquePointer>, operation: Operation) {
        self.key = key
        self.operation = operation
    }

    deinit {
        for address in idle.withLock({ $0 }) { EVP_PKEY_CTX_free(OpaquePointer(bitPattern: address)) }
    }

    /// Runs `body` with a ready context; `body` returns nil when the operation failed. nil when
    /// no context could be made, or `body` failed.
    func withContext<Result>(_ body: (OpaquePointer) -> Result?) -> Result? {
        guard let context = idle.withLock({ $0.popLast() }).flatMap(OpaquePointer.init(bitPattern:)) ?? makeContext() else { return nil }
        guard let result = body(context) else {
            EVP_PKEY_CTX_free(context)
            return nil
        }
        idle.withLock { $0.append(Int(bitPattern: context)) }
        return result
    }

    private func makeContext() -> OpaquePointer? {
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else { return nil }
        let ready = switch operation {
        case .sign: EVP_PKEY_sign_init(context) == 1
        case .verify: EVP_PKEY_verify_init(context) == 1
        }
        guard ready, EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1,
              EVP_PKEY_CTX_set_signature_md(context, FetchedDigest.sha256) == 1 else {
            EVP_PKEY_CTX_free(context)
            return nil
        }
        return context
    }
}
