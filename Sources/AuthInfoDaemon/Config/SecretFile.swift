import Foundation

/// Reads small files (config, keys, tokens) through one descriptor, checking what was opened
/// rather than the path, so a swapped file cannot slip past the checks.
enum SecretFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The file's bytes. `private` refuses files that other users can read or write (keys and
    /// tokens are secrets); every file must be a regular file of at most `maximumBytes`.
    static func read(_ path: String, maximumBytes: Int, private: Bool = false) throws(Failure) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; what was opened
        // is checked to be a regular file before a byte is read.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            switch code {
            case ENOENT: throw Failure(description: "\(path) does not exist")
            case EACCES: throw Failure(description: "\(path) cannot be read by this user (uid \(getuid())): permission denied")
            default: throw Failure(description: "cannot open \(path): \(String(cString: strerror(code)))")
            }
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw Failure(description: "cannot stat \(path): \(String(cString: strerror(errno)))") }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw Failure(description: "\(path) is not a regular file") }
        if `private`, status.st_mode & 0o007 != 0 {
            let mode = String(status.st_mode & 0o777, radix: 8)
            throw Failure(description: "\(path) is accessible to other users (mode 0\(mode)); it holds a secret: run chmod 600 \(path) (or 640 with group authinfod)")
        }
        guard Int(status.st_size) <= maximumBytes else {
            throw Failure(description: "\(path) is \(status.st_size) bytes, larger than the \(maximumBytes) expected")
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var total = 0
        while total < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            total += count
        }
        return Array(bytes.prefix(total))
    }
}
