#if canImport(Glibc)
import Glibc
#endif

/// Folders the daemon makes for itself (the cache's, the socket's, the published files').
public enum Directories {
    /// Makes `path` and any missing parents with exactly `mode` (whatever the umask: it is set
    /// again after `mkdir`), like `mkdir -p -m`. Folders already there are left as they are; a
    /// file in the way is an error naming it.
    public static func create(_ path: String, mode: mode_t) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) == 0 {
                guard chmod(prefix, mode) == 0 else { throw SystemError.last("chmod \(prefix)") }
                continue
            }
            let code = errno
            var status = stat()
            guard code == EEXIST, stat(prefix, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw SystemError(call: "mkdir \(prefix)", errno: code == EEXIST ? ENOTDIR : code)
            }
        }
    }
}
