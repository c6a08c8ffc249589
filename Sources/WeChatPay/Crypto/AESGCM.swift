import COpenSSL

/// AEAD_AES_256_GCM as WeChat Pay uses it to wrap platform certificates: a 32-byte key (the
/// merchant's APIv3 key), a nonce (12 ASCII characters in practice), associated data, and a
/// ciphertext whose last 16 bytes are the authentication tag.
public enum AESGCM {
    public static let tagLength = 16

    /// Decrypts `ciphertextAndTag`; throws when the key is not 32 bytes or the tag does not verify
    /// (wrong APIv3 key, wrong associated data, or a tampered ciphertext).
    public static func open(
        _ ciphertextAndTag: [UInt8], key: SecretBytes, nonce: [UInt8], associatedData: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        guard key.count == 32 else {
            throw CryptoError(function: "AEAD_AES_256_GCM", reason: "the APIv3 key must be 32 bytes, not \(key.count)")
        }
        guard ciphertextAndTag.count >= tagLength, !nonce.isEmpty else {
            throw CryptoError(function: "AEAD_AES_256_GCM", reason: "ciphertext shorter than its 16-byte tag, or an empty nonce")
        }
        let ciphertext = Array(ciphertextAndTag.dropLast(tagLength))
        var tag = Array(ciphertextAndTag.suffix(tagLength))
        let context = try CipherContext()
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count + tagLength)
        var length: Int32 = 0
        var finalLength: Int32 = 0
        let ctx = context.context
        guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1 else { throw .openSSL("EVP_DecryptInit_ex") }
        guard authinfod_gcm_set_ivlen(ctx, Int32(nonce.count)) == 1 else { throw .openSSL("EVP_CTRL_GCM_SET_IVLEN") }
        let keyed = key.withUnsafeBytes { keyBytes in
            EVP_DecryptInit_ex(ctx, nil, nil, keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), nonce)
        }
        guard keyed == 1 else { throw .openSSL("EVP_DecryptInit_ex") }
        if !associatedData.isEmpty {
            guard EVP_DecryptUpdate(ctx, nil, &length, associatedData, Int32(associatedData.count)) == 1 else {
                throw .openSSL("EVP_DecryptUpdate(aad)")
            }
        }
        guard EVP_DecryptUpdate(ctx, &plaintext, &length, ciphertext, Int32(ciphertext.count)) == 1 else {
            throw .openSSL("EVP_DecryptUpdate")
        }
        guard authinfod_gcm_set_tag(ctx, Int32(tagLength), &tag) == 1 else { throw .openSSL("EVP_CTRL_GCM_SET_TAG") }
        let finished = plaintext.withUnsafeMutableBufferPointer {
            EVP_DecryptFinal_ex(ctx, $0.baseAddress! + Int(length), &finalLength)
        }
        guard finished == 1 else {
            _ = drainErrorQueue()
            throw CryptoError(function: "EVP_DecryptFinal_ex", reason: "authentication tag mismatch (wrong APIv3 key or tampered data)")
        }
        return Array(plaintext.prefix(Int(length + finalLength)))
    }

    /// Encrypts `plaintext`, returning ciphertext followed by the 16-byte tag (the simulator uses
    /// this to wrap its certificate the way the gateway does).
    public static func seal(
        _ plaintext: [UInt8], key: SecretBytes, nonce: [UInt8], associatedData: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        guard key.count == 32 else {
            throw CryptoError(function: "AEAD_AES_256_GCM", reason: "the APIv3 key must be 32 bytes, not \(key.count)")
        }
        let context = try CipherContext()
        let ctx = context.context
        var output = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var length: Int32 = 0
        var finalLength: Int32 = 0
        guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1 else { throw .openSSL("EVP_EncryptInit_ex") }
        guard authinfod_gcm_set_ivlen(ctx, Int32(nonce.count)) == 1 else { throw .openSSL("EVP_CTRL_GCM_SET_IVLEN") }
        let keyed = key.withUnsafeBytes { keyBytes in
            EVP_EncryptInit_ex(ctx, nil, nil, keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), nonce)
        }
        guard keyed == 1 else { throw .openSSL("EVP_EncryptInit_ex") }
        if !associatedData.isEmpty {
            guard EVP_EncryptUpdate(ctx, nil, &length, associatedData, Int32(associatedData.count)) == 1 else {
                throw .openSSL("EVP_EncryptUpdate(aad)")
            }
        }
        guard EVP_EncryptUpdate(ctx, &output, &length, plaintext, Int32(plaintext.count)) == 1 else {
            throw .openSSL("EVP_EncryptUpdate")
        }
        let finished = output.withUnsafeMutableBufferPointer {
            EVP_EncryptFinal_ex(ctx, $0.baseAddress! + Int(length), &finalLength)
        }
        guard finished == 1 else { throw .openSSL("EVP_EncryptFinal_ex") }
        var tag = [UInt8](repeating: 0, count: tagLength)
        guard authinfod_gcm_get_tag(ctx, Int32(tagLength), &tag) == 1 else { throw .openSSL("EVP_CTRL_GCM_GET_TAG") }
        return Array(output.prefix(Int(length + finalLength))) + tag
    }
}

/// Owns one `EVP_CIPHER_CTX`.
final class CipherContext {
    let context: OpaquePointer

    init() throws(CryptoError) {
        guard let context = EVP_CIPHER_CTX_new() else { throw .openSSL("EVP_CIPHER_CTX_new") }
        self.context = context
    }

    deinit { EVP_CIPHER_CTX_free(context) }
}
