import FoundationEssentials
import Glibc
import SystemCalls

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
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
        } catch {
            switch error.errno {
            case ENOENT: throw Failure(description: "\(path) does not exist")
            case EACCES: throw Failure(description: "\(path) cannot be read by this user (uid \(getuid())): permission denied")
            default: throw Failure(description: "cannot open \(path): \(error.reason)")
            }
        }
        var status = stat()
        guard fstat(file.raw, &status) == 0 else { throw Failure(description: "cannot stat \(path): \(SystemError.last("fstat").reason)") }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw Failure(description: "\(path) is not a regular file") }
        if `private`, status.st_mode & 0o007 != 0 {
            let mode = String(status.st_mode & 0o777, radix: 8)
            throw Failure(description: "\(path) is accessible to other users (mode 0\(mode)); it holds a secret: run chmod 600 \(path) (or 640 with group authinfod)")
        }
        guard Int(status.st_size) <= maximumBytes else {
            throw Failure(description: "\(path) is \(status.st_size) bytes, larger than the \(maximumBytes) expected")
        }
        do {
            // The size was checked; a file growing meanwhile is cut at the limit.
            // One byte more than the size: the end shows without a second buffer.
            return try file.readAll(limit: maximumBytes, expected: Int(status.st_size) + 1)
        } catch {
            throw Failure(description: "cannot read \(path): \(error.reason)")
        }
    }
}
