import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Whether a file created in a folder comes out with exactly the mode `open` asks for, so that
/// the `fchmod` after it can be left out. The kernel gives a new file the asked mode less the
/// process's umask, unless the folder has a default ACL, which then decides instead.
public enum CreationMode {
    /// True when a file created in the folder open as `folder` with `mode` gets exactly `mode`:
    /// the process's umask takes none of its bits and the folder has no default ACL. False when
    /// either cannot be told (the caller then sets the mode itself).
    ///
    /// Holds while nothing changes the umask or the folder's ACL: the daemon never changes its
    /// umask, and a caller asks again for each folder it opens.
    public static func isExact(_ mode: mode_t, in folder: Int32) -> Bool {
        guard let mask = processUmask(), mask & mode == 0 else { return false }
        if fgetxattr(folder, "system.posix_acl_default", nil, 0) >= 0 { return false }
        return errno == ENODATA || errno == EOPNOTSUPP
    }

    /// The process's umask, as /proc/self/status tells it (`Umask:\t0027`): read there rather
    /// than by setting it and back, which would race with threads creating files. Nil when the
    /// line is not there (a kernel before 4.7, no /proc).
    public static func processUmask() -> mode_t? {
        guard let file = try? FileDescriptor.open("/proc/self/status", O_RDONLY),
              let bytes = try? file.readAll(limit: 1 << 16) else { return nil }
        for line in bytes.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("Umask:".utf8)) {
            let digits = line.dropFirst(6).filter { $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: " ") }
            guard !digits.isEmpty, digits.count <= 4, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }) else { return nil }
            return digits.reduce(0) { $0 * 8 + mode_t($1 - UInt8(ascii: "0")) }
        }
        return nil
    }
}
