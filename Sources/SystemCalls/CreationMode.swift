import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Whether a file created in a folder comes out with exactly the mode `open` asks for, so that
/// the `fchmod` after it can be left out. On a local file system the kernel gives a new file the
/// asked mode less the process's umask, unless the folder has a default ACL, which then decides
/// instead. A network or user-space file system (NFS, SMB, FUSE) may apply rules of its own.
public enum CreationMode {
    /// True when a file created in the folder open as `folder` with `mode` gets exactly `mode`:
    /// the folder is on a local file system whose rules are the kernel's (tmpfs, ext2/3/4, XFS,
    /// Btrfs), the process's umask takes none of the mode's bits, and the folder has no default
    /// ACL. False when any of it cannot be told (the caller then sets the mode itself).
    ///
    /// Holds while nothing changes the umask or the folder's ACL: the daemon never changes its
    /// umask, and a caller asks again for each folder it opens.
    public static func isExact(_ mode: mode_t, in folder: Int32) -> Bool {
        var fileSystem = statfs()
        guard fstatfs(folder, &fileSystem) == 0, kernelRuled.contains(Int(fileSystem.f_type)) else { return false }
        guard let mask = processUmask(), mask & mode == 0 else { return false }
        if fgetxattr(folder, "system.posix_acl_default", nil, 0) >= 0 { return false }
        return errno == ENODATA || errno == EOPNOTSUPP
    }

    /// `statfs` types of the file systems that create files by the kernel's rules alone: tmpfs
    /// (where /run is), ext2/3/4, XFS, Btrfs.
    static let kernelRuled: Set<Int> = [0x0102_1994, 0xEF53, 0x5846_5342, 0x9123_683E]

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
