#if canImport(Glibc)
import Glibc
#endif

/// Folders the daemon makes for itself (the cache's, the socket's, the published files').
public enum Directories {
    /// Makes `path` and any missing parents with `mode` (before the umask), like `mkdir -p`.
    /// Folders already there are left as they are; a file in the way is an error naming it.
    public static func create(_ path: String, mode: mode_t) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) == 0 { continue }
            let code = errno
            var status = stat()
            guard code == EEXIST, stat(prefix, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw SystemError(call: "mkdir \(prefix)", errno: code == EEXIST ? ENOTDIR : code)
            }
        }
    }
}
