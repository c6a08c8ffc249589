#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: its name and `errno`.
public struct SystemError: Error, Sendable, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// The one place raw calls go through: retries `EINTR`, turns `-1` into a `SystemError`.
enum SystemCall {
    @discardableResult
    static func run<T: BinaryInteger>(_ name: String, _ body: () -> T) throws(SystemError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SystemError(call: name, errno: code)
        }
    }
}
