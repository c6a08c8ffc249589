import SystemCalls
import COpenSSL

/// An RSA public key (the WeChat Pay public key, a platform certificate's key, or the merchant's
/// key in the simulator) that verifies SHA256withRSA (PKCS#1 v1.5) signatures.
/// Shared between threads: each verification uses a context of its own from `verifiers` (see
/// `SharedCObject`, `KeyOperationPool`).
public final class RSAPublicKey: Sendable {
    private let handle: SharedCObject<OpaquePointer>
    var key: OpaquePointer { handle.pointer }
    private let verifiers: KeyOperationPool

    /// Parses a SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), as downloaded from the merchant
    /// platform. Refuses non-RSA keys and keys under 2048 bits.
    public init(pem: String) throws(CryptoError) {
        let bio = try MemoryBIO(copying: Array(pem.utf8))
        guard let key = authinfod_read_public_key(bio.bio) else {
            throw CryptoError(
                function: "PEM_read_bio_PUBKEY",
                reason: "not a PEM public key (\"BEGIN PUBLIC KEY\"): \(drainErrorQueue() ?? "no detail")")
        }
        handle = SharedCObject(pointer: key)
        verifiers = KeyOperationPool(key: handle, operation: .verify)
        try Self.checkRSA(key)
    }

    /// Takes ownership of one reference to `key` (the caller has already counted it).
    init(owning key: OpaquePointer) throws(CryptoError) {
        handle = SharedCObject(pointer: key)
        verifiers = KeyOperationPool(key: handle, operation: .verify)
        try Self.checkRSA(key)
    }

    deinit { EVP_PKEY_free(key) }

    static func checkRSA(_ key: OpaquePointer) throws(CryptoError) {
        guard authinfod_pkey_is_rsa(key) == 1 else {
            throw CryptoError(function: "EVP_PKEY_get_base_id", reason: "the key is not an RSA key")
        }
        let bits = EVP_PKEY_get_bits(key)
        guard bits >= 2048 else {
            throw CryptoError(function: "EVP_PKEY_get_bits", reason: "the RSA key has \(bits) bits; at least 2048 are required")
        }
    }

    /// The key as SubjectPublicKeyInfo PEM.
    public func pem() throws(CryptoError) -> String {
        let bio = try MemoryBIO()
        guard PEM_write_bio_PUBKEY(bio.bio, key) == 1 else { throw .openSSL("PEM_write_bio_PUBKEY") }
        return bio.string()
    }

    /// Whether `signature` is a valid SHA256withRSA (PKCS#1 v1.5) signature of `message`.
    /// A malformed signature is simply not valid.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        let digest = SHA256.digest(message)
        // A context whose verification said "invalid" (0) is as good as before; only an error
        // (< 0) retires it.
        let valid = verifiers.withContext { context -> Bool? in
            let status = EVP_PKEY_verify(context, signature, signature.count, digest, digest.count)
            return status < 0 ? nil : status == 1
        }
        _ = drainErrorQueue()
        return valid ?? false
    }
}
