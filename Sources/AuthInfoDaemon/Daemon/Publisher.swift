import Foundation

/// Writes each valid authinfo to `{publish_dir}/{device_id}.json` (mode 0640), replacing it
/// atomically: a temporary file in the same folder, then `rename`, so a reader never sees a
/// half-written document. No fsync: SQLite holds the durable copy and every file is checked
/// against it at start.
final class Publisher {
    static let temporaryPrefix = ".tmp-"
    let directory: String
    /// Makes temporary names unique within this process (O_EXCL guards against the rest).
    private var temporaryCounter: UInt64 = 0

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(directory: String) {
        self.directory = directory
    }

    func path(of deviceID: String) -> String { directory + "/" + deviceID + ".json" }

    /// Creates the folder (0750) if needed.
    func prepare() throws(Failure) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        } catch {
            throw Failure(description: "cannot create publish_dir \(directory): \(error.localizedDescription)")
        }
    }

    /// Atomically replaces the device's file with `bytes`.
    func write(_ deviceID: String, _ bytes: [UInt8]) throws(Failure) {
        let target = path(of: deviceID)
        temporaryCounter &+= 1
        let temporary = directory + "/" + Self.temporaryPrefix + deviceID + "-\(getpid())-\(temporaryCounter)"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard fd >= 0 else { throw Failure(description: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var ok = fchmod(fd, 0o640) == 0
        var offset = 0
        while ok && offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { ok = false; break }
            offset += written
        }
        let code = errno
        if close(fd) != 0 { ok = false }
        guard ok, rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(ok ? errno : code))
            unlink(temporary)
            throw Failure(description: "cannot write \(target): \(reason)")
        }
    }

    /// Deletes the device's file, if present.
    func remove(_ deviceID: String) {
        unlink(path(of: deviceID))
    }

    /// The bytes of the device's file, or nil when it is absent or unreadable.
    func read(_ deviceID: String) -> [UInt8]? {
        let fd = open(path(of: deviceID), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            result += buffer[0..<count]
            if result.count > 1 << 20 { return nil }
        }
        return result
    }

    /// Makes the folder match `documents` exactly: rewrites files that are missing or differ,
    /// deletes files of other devices and leftover temporary files. Returns (written, removed).
    func reconcile(_ documents: [String: [UInt8]]) throws(Failure) -> (written: Int, removed: Int) {
        try prepare()
        var removed = 0
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let present = Set(entries)
        for name in entries {
            if name.hasPrefix(Self.temporaryPrefix) {
                unlink(directory + "/" + name)
                removed += 1
            } else if name.hasSuffix(".json"), documents[String(name.dropLast(5))] == nil {
                unlink(directory + "/" + name)
                removed += 1
            }
        }
        var written = 0
        for (deviceID, bytes) in documents where !present.contains(deviceID + ".json") || read(deviceID) != bytes {
            try write(deviceID, bytes)
            written += 1
        }
        return (written, removed)
    }
}
