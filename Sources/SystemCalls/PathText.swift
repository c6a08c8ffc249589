#if canImport(Glibc)
import Glibc
#endif

/// File paths as text, the few operations the daemon needs: what `NSString`'s path methods did,
/// without linking Foundation. All but `canonical` are lexical (no file is looked at).
public enum PathText {
    /// The folder holding `path`: `/var/lib/authinfod/cache.db` → `/var/lib/authinfod`,
    /// `cache.db` → `.`, `/x` → `/`.
    public static func directory(of path: String) -> String {
        var components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.isEmpty else { return path.hasPrefix("/") ? "/" : "." }
        components.removeLast()
        let joined = components.joined(separator: "/")
        if path.hasPrefix("/") { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// `path` read from `directory` when relative; as it is when absolute.
    public static func resolve(_ path: String, from directory: String) -> String {
        path.hasPrefix("/") ? path : directory + "/" + path
    }

    /// `path` with empty and `.` components dropped and each `..` taking the component before
    /// it away (never above `/`; a relative path keeps the `..` it cannot take away): `/etc//authinfod/./x/../config.json` → `/etc/authinfod/config.json`.
    public static func normalized(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var kept: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..":
                if let last = kept.last, last != ".." { kept.removeLast() } else if !absolute { kept.append(component) }
            default: kept.append(component)
            }
        }
        let joined = kept.joined(separator: "/")
        if absolute { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// `path` tidied as `NSString.standardizingPath` did: `normalized`, except that a path with
    /// `..` in it is made `canonical` first, so that `link/..` names the folder the kernel
    /// opens. Symbolic links elsewhere stay as written (a link switched later is followed then).
    public static func standardized(_ path: String) -> String {
        path.split(separator: "/").contains("..") ? canonical(path) : normalized(path)
    }

    /// An absolute `path` as the kernel reaches it: each symbolic link on the way replaced by its
    /// target, `.` and `..` taken away after that (so `link/..` is the link target's parent, as
    /// for `open`), `//` collapsed; what does not exist yet is kept as written. A relative path
    /// is `normalized` only. Two names for one folder compare equal this way (the config
    /// refuses a publish folder that is, through a link, the config's own).
    public static func canonical(_ path: String) -> String {
        guard path.hasPrefix("/") else { return normalized(path) }
        var resolved = "/"
        var pending = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)[...]
        var links = 0
        while let component = pending.popFirst() {
            switch component {
            case ".": continue
            case "..": resolved = directory(of: resolved)
            default:
                let candidate = resolved == "/" ? "/" + component : resolved + "/" + component
                // 40 links at most, as the kernel allows (ELOOP): a loop ends here, as written.
                if links < 40, let target = linkTarget(candidate) {
                    links += 1
                    if target.hasPrefix("/") { resolved = "/" }
                    pending = (target.split(separator: "/", omittingEmptySubsequences: true).map(String.init) + pending)[...]
                } else {
                    resolved = candidate
                }
            }
        }
        return resolved
    }

    /// The target of the symbolic link at `path`; nil when `path` is not one.
    private static func linkTarget(_ path: String) -> String? {
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFLNK else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        let count = readlink(path, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
