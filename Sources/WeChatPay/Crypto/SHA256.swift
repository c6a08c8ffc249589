import COpenSSL

/// SHA-256 through libcrypto.
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let input = Array(bytes)
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let status = input.withUnsafeBytes { raw in
            output.withUnsafeMutableBytes { EVP_Digest(raw.baseAddress, raw.count, $0.baseAddress, &length, EVP_sha256(), nil) }
        }
        precondition(status == 1 && length == 32, "EVP_Digest(SHA-256) failed: \(drainErrorQueue() ?? "no detail")")
        return output
    }
}
