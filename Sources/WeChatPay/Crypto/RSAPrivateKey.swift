import SystemCalls
import COpenSSL

/// An RSA private key (the merchant's `apiclient_key.pem`, or the simulator's platform key) that
/// signs with SHA256withRSA, PKCS#1 v1.5.
/// Shared between threads: each signature uses a context of its own from `signers` (see
/// `SharedCObject`, `KeyOperationPool`).
public final class RSAPrivateKey: Sendable {
    private let handle: SharedCObject<OpaquePointer>
    var key: OpaquePointer { handle.pointer }
    private let signers: KeyOperationPool

    /// Parses a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    /// Refuses encrypted keys (no passphrase prompt), non-RSA keys and keys under 2048 bits.
    public init(pem: String) throws(CryptoError) {
        let bio = try MemoryBIO(copying: Array(pem.utf8))
        guard let key = authinfod_read_private_key(bio.bio) else {
            throw CryptoError(
                function: "PEM_read_bio_PrivateKey",
                reason: "not a PEM private key (PKCS#8 \"BEGIN PRIVATE KEY\" or PKCS#1 \"BEGIN RSA PRIVATE KEY\", unencrypted): \(drainErrorQueue() ?? "no detail")")
        }
        handle = SharedCObject(pointer: key)
        signers = KeyOperationPool(key: handle, operation: .sign)
        try RSAPublicKey.checkRSA(key)
    }

    /// A fresh key pair of `bits` bits (for the simulator and the demo, never for a merchant).
    public init(generatingBits bits: Int = 2048) throws(CryptoError) {
        guard let key = authinfod_rsa_generate(UInt32(bits)) else { throw .openSSL("EVP_RSA_gen") }
        handle = SharedCObject(pointer: key)
        signers = KeyOperationPool(key: handle, operation: .sign)
    }

    deinit { EVP_PKEY_free(key) }

    /// The key size in bits.
    public var bits: Int { Int(EVP_PKEY_get_bits(key)) }

    /// The matching public key.
    public func publicKey() throws(CryptoError) -> RSAPublicKey {
        try RSAPublicKey(pem: publicKeyPEM())
    }

    /// The private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    public func pkcs8PEM() throws(CryptoError) -> String {
        let bio = try MemoryBIO()
        guard PEM_write_bio_PKCS8PrivateKey(bio.bio, key, nil, nil, 0, nil, nil) == 1 else {
            throw .openSSL("PEM_write_bio_PKCS8PrivateKey")
        }
        return bio.string()
    }

    /// The public half as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`).
    public func publicKeyPEM() throws(CryptoError) -> String {
        let bio = try MemoryBIO()
        guard PEM_write_bio_PUBKEY(bio.bio, key) == 1 else { throw .openSSL("PEM_write_bio_PUBKEY") }
        return bio.string()
    }

    /// SHA256withRSA (PKCS#1 v1.5) signature of `message`. Deterministic for a given key and message.
    public func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        let digest = SHA256.digest(message)
        let capacity = Int(EVP_PKEY_get_size(key))
        let signature = signers.withContext { context -> [UInt8]? in
            var length = capacity
            var signature = [UInt8](repeating: 0, count: capacity)
            guard EVP_PKEY_sign(context, &signature, &length, digest, digest.count) == 1 else { return nil }
            return length == capacity ? signature : Array(signature.prefix(length))
        }
        guard let signature else { throw .openSSL("EVP_PKEY_sign") }
        return signature
    }
}
