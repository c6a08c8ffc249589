import COpenSSL
import SystemCalls

/// SHA-256 through libcrypto.
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        if let digest = bytes.withContiguousStorageIfAvailable({ digest(UnsafeRawBufferPointer($0)) }) { return digest }
        return Array(bytes).withUnsafeBytes { digest($0) }
    }

    /// The 32-byte digest of the bytes at `input`.
    public static func digest(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        var length: UInt32 = 0
        var status: Int32 = 0
        let output = [UInt8](unsafeUninitializedCapacity: 32) { buffer, initialized in
            status = EVP_Digest(input.baseAddress, input.count, buffer.baseAddress, &length, FetchedDigest.sha256, nil)
            initialized = status == 1 ? 32 : 0
        }
        precondition(status == 1 && length == 32, "EVP_Digest(SHA-256) failed: \(drainErrorQueue() ?? "no detail")")
        return output
    }
}

/// Digest implementations fetched from the default provider once per process. `EVP_sha256()`
/// makes libcrypto fetch the implementation again on every use (a name lookup under a lock,
/// measured at several percent of a TLS request and of a signature); a fetched one is used as is.
enum FetchedDigest {
    private static let fetchedSHA256: SharedCObject<OpaquePointer> = {
        // Kept for the life of the process (never freed): read-only once fetched.
        guard let digest = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("libcrypto has no SHA256: \(drainErrorQueue() ?? "no detail")") }
        return SharedCObject(pointer: digest)
    }()

    static var sha256: OpaquePointer { fetchedSHA256.pointer }
}
