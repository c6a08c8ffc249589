#if canImport(Glibc)
import Glibc
#endif

/// An open descriptor with exactly one owner, closed exactly once: by `close()`, by `take()`
/// handing it to a new owner, or when the value goes out of scope.
public struct FileDescriptor: ~Copyable {
    public let raw: Int32

    /// Takes ownership of `raw`, an open descriptor.
    public init(owning raw: Int32) {
        precondition(raw >= 0, "FileDescriptor(owning:) needs an open descriptor, not \(raw)")
        self.raw = raw
    }

    /// `open(2)` with `O_CLOEXEC` added, retrying EINTR.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(SystemError) -> FileDescriptor {
        FileDescriptor(owning: try SystemCall.run("open(\(path))") { Glibc.open(path, flags | O_CLOEXEC, mode) })
    }

    /// Closes it now.
    public consuming func close() {}

    /// Closes it now and reports a failed close (a write that failed late, as on NFS). Never
    /// retried: on Linux the descriptor is gone even when close says EINTR.
    public consuming func closeCheckingErrors() throws(SystemError) {
        guard Glibc.close(take()) == 0 else { throw .last("close") }
    }

    /// Hands the descriptor to a new owner, who must close it.
    public consuming func take() -> Int32 {
        let raw = self.raw
        discard self
        return raw
    }

    /// Reads until end of file or `limit` bytes, retrying EINTR. `expected`: about how many
    /// bytes there are (a file's size), so a large file is read into one buffer.
    public func readAll(limit: Int, expected: Int = 4096) throws(SystemError) -> [UInt8] {
        // Small first (most reads are small files), doubling as it fills.
        var bytes = [UInt8](repeating: 0, count: min(limit, max(1, expected)))
        var total = 0
        while total < limit {
            if total == bytes.count { bytes += [UInt8](repeating: 0, count: min(limit - total, bytes.count)) }
            let count = try SystemCall.run("read") {
                bytes.withUnsafeMutableBytes { Glibc.read(raw, $0.baseAddress! + total, $0.count - total) }
            }
            if count == 0 { break }
            total += count
        }
        bytes.removeLast(bytes.count - total)
        return bytes
    }

    /// Writes every byte of `bytes`, retrying EINTR and short writes.
    public func writeAll(_ bytes: some Collection<UInt8>) throws(SystemError) {
        let array = Array(bytes)
        var offset = 0
        while offset < array.count {
            offset += try SystemCall.run("write") {
                array.withUnsafeBytes { Glibc.write(raw, $0.baseAddress! + offset, $0.count - offset) }
            }
        }
    }

    deinit { _ = Glibc.close(raw) }
}
