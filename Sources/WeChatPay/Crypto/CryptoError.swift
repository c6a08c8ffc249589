import COpenSSL

/// A libcrypto call that failed, with the OpenSSL error queue's text.
///
/// `function` names the call (or the step) that failed; `reason` is what OpenSSL said, or what
/// authinfod checked, in words an operator can act on.
public struct CryptoError: Error, CustomStringConvertible, Sendable, Equatable {
    public let function: String
    public let reason: String

    public init(function: String, reason: String) {
        self.function = function
        self.reason = reason
    }

    /// An error for `function` that drains and reports OpenSSL's thread-local error queue.
    static func openSSL(_ function: String) -> CryptoError {
        CryptoError(function: function, reason: drainErrorQueue() ?? "no OpenSSL error reported")
    }

    public var description: String { "\(function): \(reason)" }
}

/// Empties this thread's OpenSSL error queue and returns its first (oldest) entry as text, so a
/// later call never reports a stale error.
func drainErrorQueue() -> String? {
    var first: String?
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        if first == nil {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            first = String(decoding: buffer.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
        }
    }
    return first
}
