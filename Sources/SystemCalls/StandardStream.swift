#if canImport(Glibc)
import Glibc
#endif

/// The process's standard output and error, written unbuffered in whole (a short write is
/// continued; a failed one, such as a closed pipe, is dropped: there is nowhere left to say so).
public enum StandardStream: Int32, Sendable {
    case output = 1
    case error = 2

    /// Writes `text` as UTF-8, all of it.
    public func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(rawValue, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Everything standard input holds until its end, at most `limit` bytes.
    public static func readInput(limit: Int) throws(SystemError) -> [UInt8] {
        let copy = dup(0)
        guard copy >= 0 else { throw SystemError.last("dup") }
        let input = FileDescriptor(owning: copy)
        return try input.readAll(limit: limit)
    }
}
