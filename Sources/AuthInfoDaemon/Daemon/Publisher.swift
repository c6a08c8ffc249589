import FoundationEssentials
import WeChatPay
import Glibc
import Synchronization
import SystemCalls

/// Writes each valid authinfo to `{publish_dir}/{device_id}.json` (mode 0640), replacing it
/// atomically: a temporary file in the same folder, then `rename`, so a reader never sees a
/// half-written document. No fsync: SQLite holds the durable copy and every file is checked
/// against it at start.
///
/// Thread-safe (at start a `Republisher` writes from worker threads): it holds no state
/// but what keeps temporary names unique (a counter and its process id).
final class Publisher: Sendable {
    static let temporaryPrefix = ".tmp-"
    let directory: String
    /// Makes temporary names unique within this process (O_EXCL guards against the rest).
    private let temporaryCounter = Atomic<UInt64>(0)
    /// This process, in every temporary name (read once: 100,000 files at start).
    private let processID = getpid()

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
            try Directories.create(directory, mode: 0o750)
        } catch {
            throw Failure(description: "cannot create publish_dir \(directory): \(error.reason)")
        }
    }

    /// The publish folder held open while the start's republish writes many files at once:
    /// each file's temporary name and final name resolve against it, not the whole path walked
    /// again twice per file. Refresh-time writes keep using paths, so a folder recreated while
    /// running is followed.
    ///
    /// Files stay temporary file + `rename` here too (the contract's word), also where linking
    /// an unnamed `O_TMPFILE` would be cheaper: a terminal watching the folder with inotify
    /// sees every new value as `IN_MOVED_TO`, the first one after a reboot included.
    ///
    /// Each file is created with mode 0640; where the file system, the umask or the folder's
    /// default ACL could make it otherwise (`CreationMode`), `fchmod` sets it exactly. Under the
    /// service's `UMask=0027` on /run they cannot, and the start leaves out 100,000 `fchmod`s
    /// (about a tenth of the files' kernel time).
    final class Folder: Sendable {
        let descriptor: Int32
        /// Whether a file created here with 0640 may come out otherwise (then `fchmod` follows).
        let setsMode: Bool

        fileprivate init(descriptor: Int32) {
            self.descriptor = descriptor
            setsMode = !CreationMode.isExact(0o640, in: descriptor)
        }

        deinit { close(descriptor) }
    }

    /// Opens the folder (made by `prepare`) for `publish(_:_:present:in:)`.
    func openFolder() throws(Failure) -> Folder {
        do {
            return Folder(descriptor: try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY).take())
        } catch {
            throw Failure(description: "cannot open publish_dir \(directory): \(error.reason)")
        }
    }

    /// Atomically replaces the device's file with `bytes`. With `folder`, names resolve against it.
    func write(_ deviceID: String, _ bytes: [UInt8], in folder: Folder? = nil) throws(Failure) {
        let counter = temporaryCounter.wrappingAdd(1, ordering: .relaxed).newValue
        let at = folder?.descriptor ?? AT_FDCWD
        let setsMode = folder?.setsMode ?? true
        // The names are made on the stack: a start writes 100,000 files.
        let failed = FileNames.with(folder == nil ? directory : nil, deviceID, processID, counter) { temporary, target -> (renaming: Bool, SystemError)? in
            do throws(SystemError) {
                let file = FileDescriptor(owning: try SystemCall.run("open") {
                    openat(at, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o640)
                })
                // Exactly 0640 whatever the umask or a default ACL on the folder made of it, unless
                // the held folder is known to leave 0640 as it is (`Folder.setsMode`).
                if setsMode { try SystemCall.run("fchmod") { fchmod(file.raw, 0o640) } }
                try file.writeAll(bytes)
                try file.closeCheckingErrors()
            } catch {
                unlinkat(at, temporary, 0)
                return (false, error)
            }
            do throws(SystemError) {
                try SystemCall.run("rename") { renameat(at, temporary, at, target) }
            } catch {
                unlinkat(at, temporary, 0)
                return (true, error)
            }
            return nil
        }
        guard let (renaming, error) = failed else { return }
        let name = renaming ? deviceID + ".json" : Self.temporaryPrefix + deviceID + "-\(processID)-\(counter)"
        throw Failure(description: "cannot write \(directory)/\(name): \(error.reason)")
    }

    /// Where `name` in the folder is reached: relative to `folder` when it is held, else by its
    /// whole path.
    private func locate(_ name: String, in folder: Folder?) -> (at: Int32, name: String) {
        folder.map { ($0.descriptor, name) } ?? (AT_FDCWD, directory + "/" + name)
    }

    /// Whether `name` is one of the temporary names `write` makes (`.tmp-{device}-{pid}-{n}`).
    static func isTemporaryName(_ name: String) -> Bool {
        guard name.hasPrefix(temporaryPrefix) else { return false }
        let parts = name.split(separator: "-")
        return parts.count >= 4 && parts.suffix(2).allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    /// Whether `bytes` is the authinfo document of `deviceID`, as `write` makes it.
    static func isDocument(_ bytes: [UInt8], of deviceID: String) -> Bool {
        guard case .object(let members)? = try? JSONParser.parse(bytes) else { return false }
        let keys = Set(members.map(\.key))
        guard keys == ["device_id", "authinfo", "fetched_at", "expires_at"] else { return false }
        if case .string(let id)? = members.first(where: { $0.key == "device_id" })?.value { return id == deviceID }
        return false
    }

    /// Deletes the device's file, if present.
    func remove(_ deviceID: String) {
        unlink(path(of: deviceID))
    }

    /// The bytes of the device's file, or nil when it is absent or unreadable.
    func read(_ deviceID: String, in folder: Folder? = nil) -> [UInt8]? {
        let (at, name) = locate(deviceID + ".json", in: folder)
        guard let raw = try? SystemCall.run("open", { openat(at, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }) else { return nil }
        let file = FileDescriptor(owning: raw)
        guard let bytes = try? file.readAll(limit: 1 << 20 + 1), bytes.count <= 1 << 20 else { return nil }
        return bytes
    }

    /// The first step of making the folder match the valid values, before any value is known:
    /// creates the folder and deletes leftover temporary files. Returns the names present
    /// before (for `publish` and `removeStale`) and how many files went.
    func listFolder() throws(Failure) -> (present: Set<String>, removed: Int) {
        try prepare()
        var removed = 0
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in entries where Self.isTemporaryName(name) {
            unlink(directory + "/" + name)
            removed += 1
        }
        return (Set(entries), removed)
    }

    /// Deletes, of the `present` names, the documents of devices `isCurrent` says have no valid
    /// value — only files this daemon writes (an authinfo document named for its device), never
    /// anything else someone keeps there. Returns how many went.
    func removeStale(_ present: Set<String>, keeping isCurrent: (String) -> Bool) -> Int {
        var removed = 0
        for name in present where name.hasSuffix(".json") {
            let deviceID = String(name.dropLast(5))
            guard !isCurrent(deviceID), let bytes = read(deviceID), Self.isDocument(bytes, of: deviceID) else { continue }
            unlink(directory + "/" + name)
            removed += 1
        }
        return removed
    }

    /// Both steps at once, before anything is written: `listFolder`, then `removeStale`.
    func clearLeftovers(keeping isCurrent: (String) -> Bool) throws(Failure) -> (present: Set<String>, removed: Int) {
        let (present, temporaries) = try listFolder()
        return (present, temporaries + removeStale(present, keeping: isCurrent))
    }

    /// Writes the device's file unless it already holds `bytes` (`present`: the names
    /// `listFolder` found). True when it was written.
    func publish(_ deviceID: String, _ bytes: [UInt8], present: Set<String>, in folder: Folder? = nil) throws(Failure) -> Bool {
        // Most starts find the folder empty: no name to make and hash then.
        if !present.isEmpty, present.contains(deviceID + ".json"), read(deviceID, in: folder) == bytes { return false }
        try write(deviceID, bytes, in: folder)
        return true
    }

    /// Makes the folder match `documents` (every step above). Returns (written, removed).
    func reconcile(_ documents: [String: [UInt8]]) throws(Failure) -> (written: Int, removed: Int) {
        let (present, removed) = try clearLeftovers { documents[$0] != nil }
        var written = 0
        for (deviceID, bytes) in documents where try publish(deviceID, bytes, present: present) {
            written += 1
        }
        return (written, removed)
    }
}

/// The two names of a file `Publisher.write` makes, as C strings on the stack: the temporary
/// `.tmp-{device}-{pid}-{n}` and the final `{device}.json`, each after `{directory}/` when
/// there is no folder held to resolve them against.
private enum FileNames {
    static func with<R>(_ directory: String?, _ deviceID: String, _ processID: pid_t, _ counter: UInt64,
                        _ body: (UnsafePointer<CChar>, UnsafePointer<CChar>) -> R) -> R {
        var directory = directory
        var deviceID = deviceID
        let hasFolder = directory != nil
        return directory.withUTF8OrNone { folder in
            deviceID.withUTF8 { id in
                // The folder and its slash in each name, then the temporary name's prefix, the
                // device, two dashes, two numbers of at most 20 digits and its NUL; the final
                // name's device, `.json` and NUL.
                let folderPart = hasFolder ? folder.count + 1 : 0
                let capacity = folderPart + Publisher.temporaryPrefix.utf8.count + id.count + 2 + 40 + 1
                    + folderPart + id.count + 5 + 1
                return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buffer in
                    var names = StackBytes(buffer)
                    func appendFolder() {
                        guard hasFolder else { return }
                        names.append(folder)
                        names.append(UInt8(ascii: "/"))
                    }
                    appendFolder()
                    names.append(Publisher.temporaryPrefix.utf8)
                    names.append(id)
                    names.append(UInt8(ascii: "-"))
                    names.appendDecimal(UInt64(processID))
                    names.append(UInt8(ascii: "-"))
                    names.appendDecimal(counter)
                    names.append(0)
                    let target = names.count
                    appendFolder()
                    names.append(id)
                    names.append(".json".utf8)
                    names.append(0)
                    let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                    return body(base, base + target)
                }
            }
        }
    }
}

private extension Optional<String> {
    /// The string's UTF-8 bytes lent to `body`; no bytes for nil.
    mutating func withUTF8OrNone<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        guard var text = self else { return body(UnsafeBufferPointer(start: nil, count: 0)) }
        return text.withUTF8(body)
    }
}
