#if canImport(Glibc)
import Glibc
#endif

/// The one place raw calls go through: retries `EINTR`, turns `-1` into a `SystemError`
/// naming the call.
public enum SystemCall {
    @inlinable @discardableResult
    public static func run<T: BinaryInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SystemError(call: name(), errno: code)
        }
    }

    /// Like `run`, but `EAGAIN`/`EWOULDBLOCK` (a non-blocking descriptor with nothing to do
    /// now) is nil rather than an error.
    @inlinable
    public static func nonBlocking<T: BinaryInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T? {
        do {
            return try run(name(), body)
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }
}
