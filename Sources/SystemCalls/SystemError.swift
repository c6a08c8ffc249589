#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: its name (with what it worked on) and `errno`.
public struct SystemError: Error, Sendable, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The error the calling thread's `errno` holds now, for `call`.
    public static func last(_ call: String) -> SystemError {
        SystemError(call: call, errno: Glibc.errno)
    }

    /// What `errno` means, e.g. "No such file or directory".
    public var reason: String { Self.reason(errno) }

    /// What an errno value means.
    public static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    public var description: String { "\(call): \(reason)" }
}
