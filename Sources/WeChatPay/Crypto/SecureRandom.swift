import COpenSSL

/// Cryptographically secure randomness from OpenSSL's CSPRNG.
public enum SecureRandom {
    static let alphanumerics = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// `count` random bytes. A CSPRNG that cannot be seeded is a broken host, not a recoverable
    /// condition, so it stops the process.
    public static func bytes(_ count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let ok = buffer.withUnsafeMutableBytes { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "RAND_bytes failed: \(drainErrorQueue() ?? "unknown")")
        return buffer
    }

    /// A string of `length` characters from `[0-9A-Za-z]`, uniformly distributed (rejection
    /// sampling, no modulo bias). The APIv3 nonce is `alphanumeric(32)`.
    public static func alphanumeric(_ length: Int) -> String {
        var result = [UInt8]()
        result.reserveCapacity(length)
        while result.count < length {
            for byte in bytes(length * 2) where byte < 248 && result.count < length {
                result.append(alphanumerics[Int(byte % 62)])
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// `count` random bytes as upper-case hex.
    public static func hex(_ count: Int) -> String {
        Hex.uppercase(bytes(count))
    }
}
