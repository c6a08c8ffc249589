/// File paths as text, the few operations the daemon needs, lexically (no file is looked at):
/// what `NSString`'s path methods did, without linking Foundation.
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
}
