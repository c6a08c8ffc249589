import Foundation
import Testing
import WeChatPay
import SystemCalls
import CLinux
@testable import AuthInfoDaemon

@Suite struct StorageTests {
    func record(_ id: String) -> DeviceRecord {
        var record = DeviceRecord(deviceID: id)
        record.authinfo = "value-\(id)\"quoted\""
        record.fetchedAt = 1_763_800_000
        record.expiresAt = 1_763_803_600
        record.nextAttemptAt = 1_763_802_400
        record.consecutiveFailures = 2
        record.lastError = RecordedError(code: "SYSTEM_ERROR", message: "down", httpStatus: 500, requestID: "R1", at: 1_763_800_100)
        record.pushedRawData = "pushed"
        record.rawDataDigest = RawDataDigest.of("pushed")
        record.rawDataSince = 1_763_799_000
        record.needsRawData = true
        record.fetchedWithRawData = RawDataDigest.of("earlier")
        return record
    }

    /// A cache written by the previous schema (version 1) is migrated in place: every value and
    /// error kept, the raw_data lifecycle columns added empty.
    @Test func aVersionOneCacheIsMigratedKeepingEveryValue() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("authinfo.db")
        do {
            let connection = try SQLiteConnection(path: path)
            try connection.execute("""
                CREATE TABLE devices (device_id TEXT PRIMARY KEY NOT NULL, authinfo TEXT, fetched_at REAL, expires_at REAL,
                    next_attempt_at REAL, consecutive_failures INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
                    error_code TEXT, error_message TEXT, error_http_status INTEGER, error_request_id TEXT, error_at REAL, pushed_raw_data TEXT);
                CREATE TABLE platform_certificates (serial_no TEXT PRIMARY KEY NOT NULL, pem TEXT NOT NULL, downloaded_at REAL NOT NULL);
                INSERT INTO devices (device_id, authinfo, fetched_at, expires_at, rejected, pushed_raw_data) VALUES ('old', 'V', 1, 2, 1, 'P');
                PRAGMA user_version = 1;
                """)
        }
        let store = try AuthInfoStore(path: path)
        #expect(try store.connection.scalarText("PRAGMA user_version") == "3")
        let old = try #require(try store.loadAll()["old"])
        #expect(old.authinfo == "V" && old.rejected && old.pushedRawData == "P" && !old.needsRawData && old.rawDataDigest == nil)
    }

    /// A raw_data fingerprint is 16 bytes inline, tells raw_data apart, and reads back from every
    /// form the cache holds: its own 32 hex digits, and the full 64-digit SHA-256 an earlier
    /// version wrote (as the same fingerprint, so an upgrade asks the gateway nothing again);
    /// anything else in that column reads as none.
    @Test func aRawDataFingerprintReadsBackFromEveryFormTheCacheHolds() throws {
        #expect(MemoryLayout<RawDataDigest>.size == 16)
        let digest = RawDataDigest.of("raw-1")
        #expect(digest == RawDataDigest.of("raw-1") && digest != RawDataDigest.of("raw-2"))
        #expect(digest.hex.count == 32 && digest.hex == Hex.lowercase(SHA256.digest(Array("raw-1".utf8)).prefix(16)))
        #expect(RawDataDigest(hex: digest.hex) == digest)
        #expect(RawDataDigest(hex: digest.hex.uppercased()) == digest)
        #expect(RawDataDigest(hex: Hex.lowercase(SHA256.digest(Array("raw-1".utf8)))) == digest)
        for bad in ["", "00", String(digest.hex.dropLast()), digest.hex + "0", String(digest.hex.dropLast()) + "g",
                    String(Hex.lowercase(SHA256.digest(Array("raw-1".utf8))).dropLast()) + "z", "\u{0}" + String(digest.hex.dropFirst())] {
            #expect(RawDataDigest(hex: bad) == nil, "\(bad)")
        }

        let directory = try TemporaryDirectory()
        let path = directory.file("authinfo.db")
        let store = try AuthInfoStore(path: path)
        var record = DeviceRecord(deviceID: "d")
        record.rawDataDigest = digest
        try store.save([record])
        try store.connection.execute("""
            UPDATE devices SET fetched_with_raw_data = '\(Hex.lowercase(SHA256.digest(Array("raw-1".utf8))))';
            INSERT INTO devices (device_id, raw_data_digest, fetched_with_raw_data) VALUES ('zero', '\(String(repeating: "0", count: 32))', 'not hex');
            """)
        let loaded = try store.loadAll()
        #expect(loaded["d"]?.rawDataDigest == digest && loaded["d"]?.fetchedWithRawData == digest)
        #expect(loaded["zero"]?.rawDataDigest == nil && loaded["zero"]?.fetchedWithRawData == nil)

        // A version 2 cache (64 digits) is cut to 32 digits in place when opened for writing, and
        // an earlier authinfod, which knew only version 2, would refuse it from then on.
        let full = Hex.lowercase(SHA256.digest(Array("raw-1".utf8)))
        try store.connection.execute("UPDATE devices SET raw_data_digest = '\(full)', fetched_with_raw_data = '\(full)' WHERE device_id = 'd'; PRAGMA user_version = 2;")
        let reopened = try AuthInfoStore(path: path)
        #expect(try reopened.connection.scalarText("PRAGMA user_version") == "3")
        #expect(try reopened.connection.scalarText("SELECT raw_data_digest || ' ' || fetched_with_raw_data FROM devices WHERE device_id = 'd'") == "\(digest.hex) \(digest.hex)")
        #expect(try reopened.loadAll()["d"]?.rawDataDigest == digest)
    }

    /// The records in memory follow a reload by id: a device no longer configured keeps its
    /// record aside (the cache keeps it), and gets it back when it is configured again.
    @Test func recordsFollowTheirDevicesThroughReloads() {
        var table = RecordTable(devices: .named(["a", "b"]))
        for id in ["a", "b", "gone"] { table[id] = record(id) }
        #expect(table.count == 3 && table.all.map(\.deviceID) == ["a", "b", "gone"])
        table.reconfigure(.named(["c", "gone"]))
        #expect(table["c"] == nil && table["gone"] == record("gone") && table["a"] == record("a") && table["b"] == record("b"))
        #expect(table.count == 3 && Set(table.all.map(\.deviceID)) == ["a", "b", "gone"])
        table["a"] = nil
        table["c"] = record("c")
        table.reconfigure(.named(["a", "b", "c"]))
        #expect(table["a"] == nil && table["b"] == record("b") && table["c"] == record("c") && table["gone"] == record("gone"))
        #expect(table.all.map(\.deviceID) == ["b", "c", "gone"])
    }

    /// A record is 128 bytes (one per device), yet every field reads back what was set: each
    /// time absent and present (zero, negative, fractional), failure counts beyond 32 bits
    /// clamped, and a record without times round-trips through the cache as well.
    @Test func aCompactRecordKeepsEveryFieldAndRoundTrips() throws {
        #expect(MemoryLayout<DeviceRecord>.stride <= 128)
        let times: [WritableKeyPath<DeviceRecord, Double?>] = [\.fetchedAt, \.expiresAt, \.nextAttemptAt, \.rawDataSince]
        for time in times {
            var record = DeviceRecord(deviceID: "t")
            #expect(record[keyPath: time] == nil)
            for value in [0, -1.5, 1_763_800_000.25, .greatestFiniteMagnitude] {
                record[keyPath: time] = value
                #expect(record[keyPath: time] == value)
                #expect(times.filter { $0 != time }.allSatisfy { record[keyPath: $0] == nil })
            }
            record[keyPath: time] = nil
            #expect(record == DeviceRecord(deviceID: "t"))
        }
        var record = record("c")
        record.consecutiveFailures = Int.max
        #expect(record.consecutiveFailures == Int(Int32.max))
        record.consecutiveFailures = 7
        #expect(record.consecutiveFailures == 7 && record.rejected == false && record.needsRawData)
        let directory = try TemporaryDirectory()
        let store = try AuthInfoStore(path: directory.file("authinfo.db"))
        let bare = DeviceRecord(deviceID: "bare")
        try store.save([record, bare])
        let loaded = try store.loadAll()
        #expect(loaded["c"] == record && loaded["bare"] == bare)
    }

    @Test func recordsRoundTripDurablyInWALMode() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("db/authinfo.db")
        do {
            let store = try AuthInfoStore(path: path)
            try store.save([record("a"), record("b")])
            #expect(try store.connection.scalarText("PRAGMA journal_mode") == "wal")
            // NORMAL: a commit survives a killed process at once and a power loss after the
            // next syncToDisk (the daemon's within a second, DurabilityTests).
            #expect(try store.connection.scalarText("PRAGMA synchronous") == "1")
            #expect(FileManager.default.fileExists(atPath: path + "-wal"))
            try store.syncToDisk()
            // A repair's checkpoint leaves everything in the database file and the log empty.
            try store.checkpoint()
            let log = try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int
            #expect(log == 0)
            try store.syncToDisk()
        }
        let loaded = try AuthInfoStore(path: path, readOnly: true).loadAll()
        #expect(loaded["a"] == record("a"))
        #expect(loaded.count == 2)
        var status = stat()
        stat(path, &status)
        #expect(status.st_mode & 0o777 == 0o600)
    }

    @Test func certificatesAreReplacedAsASet() throws {
        let directory = try TemporaryDirectory()
        let store = try AuthInfoStore(path: directory.file("a.db"))
        try store.saveCertificates([("A1", "pem-a"), ("B2", "pem-b")], downloadedAt: 10)
        try store.saveCertificates([("C3", "pem-c")], downloadedAt: 20)
        let loaded = try store.loadCertificates()
        #expect(loaded.pems == ["pem-c"])
        #expect(loaded.downloadedAt == 20)
    }

    @Test func aCorruptDatabaseIsRefusedAndLeftUntouched() throws {
        let directory = try TemporaryDirectory()
        let garbage = String(repeating: "not a database ", count: 400)
        let path = try directory.write("authinfo.db", garbage)
        do {
            _ = try AuthInfoStore(path: path)
            Issue.record("a corrupt database was opened")
        } catch {
            #expect(error.message.contains("left untouched"))
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == garbage)
    }

    @Test func aNewerSchemaIsRefused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("authinfo.db")
        do {
            let store = try AuthInfoStore(path: path)
            try store.connection.execute("PRAGMA user_version = 99")
        }
        do {
            _ = try AuthInfoStore(path: path)
            Issue.record("a newer schema was opened")
        } catch {
            #expect(error.message.contains("schema version 99"))
        }
    }

    @Test func publisherWritesAtomicallyWithMode0640AndReconciles() throws {
        let directory = try TemporaryDirectory()
        let publisher = Publisher(directory: directory.file("devices"))
        try publisher.prepare()
        try publisher.write("a", Array("{\"v\":1}".utf8))
        var status = stat()
        stat(publisher.path(of: "a"), &status)
        #expect(status.st_mode & 0o777 == 0o640)
        // What the daemon itself leaves behind: a removed device's document, a temporary file.
        try directory.write("devices/removed.json", #"{"device_id":"removed","authinfo":"A","fetched_at":1,"expires_at":2}"#)
        try directory.write("devices/.tmp-a-1234-1", "half")
        try directory.write("devices/b.json", "stale")
        let (written, removed) = try publisher.reconcile(["a": Array("{\"v\":1}".utf8), "b": Array("{\"v\":2}".utf8), "c": Array("{}".utf8)])
        #expect(written == 2)
        #expect(removed == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("devices")).sorted() == ["a.json", "b.json", "c.json"])
        #expect(publisher.read("b") == Array("{\"v\":2}".utf8))
    }

    @Test func filesGetMode0640WhateverTheUmask() throws {
        let directory = try TemporaryDirectory()
        for mask: mode_t in [0o077, 0o027, 0o022, 0o000] {
            let previous = umask(mask)
            defer { umask(previous) }
            let publisher = Publisher(directory: directory.file("devices-\(mask)"))
            try publisher.prepare()
            try publisher.write("a", Array("{}".utf8))
            var status = stat()
            stat(publisher.path(of: "a"), &status)
            #expect(status.st_mode & 0o777 == 0o640, "umask \(String(mask, radix: 8)): mode \(String(status.st_mode & 0o777, radix: 8))")
        }
    }

    @Test func aHeldFolderWritesByTemporaryFileAndRenameWithMode0640() throws {
        let directory = try TemporaryDirectory()
        for mask: mode_t in [0o077, 0o022] {
            let previous = umask(mask)
            defer { umask(previous) }
            let publisher = Publisher(directory: directory.file("devices-\(mask)"))
            try publisher.prepare()
            try directory.write("devices-\(mask)/taken.json", "old")
            let folder = try publisher.openFolder()
            // A terminal may watch the folder for renames: a new file arrives as IN_MOVED_TO too.
            let watch = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            defer { close(watch) }
            #expect(inotify_add_watch(watch, publisher.directory, UInt32(IN_MOVED_TO)) >= 0)
            #expect(try publisher.publish("free", Array("{\"v\":1}".utf8), present: [], in: folder))
            #expect(try publisher.publish("taken", Array("{\"v\":2}".utf8), present: [], in: folder), "listed as free, taken since")
            #expect(try publisher.publish("listed", Array("{\"v\":3}".utf8), present: ["listed.json"], in: folder))
            #expect(try !publisher.publish("listed", Array("{\"v\":3}".utf8), present: ["listed.json"], in: folder), "already holds it")
            var events = [UInt8](repeating: 0, count: 4096)
            let count = read(watch, &events, events.count)
            let text = String(decoding: events.prefix(max(0, count)).map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            for name in ["free.json", "taken.json", "listed.json"] { #expect(text.contains(name), "no IN_MOVED_TO for \(name): \(text)") }
            #expect(publisher.read("free") == Array("{\"v\":1}".utf8) && publisher.read("taken", in: folder) == Array("{\"v\":2}".utf8))
            #expect(publisher.read("listed") == Array("{\"v\":3}".utf8))
            #expect(try FileManager.default.contentsOfDirectory(atPath: publisher.directory).sorted() == ["free.json", "listed.json", "taken.json"],
                    "no temporary file left")
            for id in ["free", "taken", "listed"] {
                var status = stat()
                stat(publisher.path(of: id), &status)
                #expect(status.st_mode & 0o777 == 0o640, "\(id), umask \(String(mask, radix: 8)): mode \(String(status.st_mode & 0o777, radix: 8))")
            }
        }
        // The folder removed while held: the write fails, naming the file, rather than vanishing.
        let publisher = Publisher(directory: directory.file("gone"))
        try publisher.prepare()
        let folder = try publisher.openFolder()
        try FileManager.default.removeItem(atPath: publisher.directory)
        do {
            _ = try publisher.publish("a", Array("{}".utf8), present: [], in: folder)
            Issue.record("a write into a removed folder succeeded")
        } catch {
            #expect(error.description.contains(publisher.directory + "/"), "\(error)")
        }
    }

    /// A default ACL on the folder decides a new file's mode instead of the umask: files written
    /// through the held folder must still come out 0640 (the `fchmod` is kept there).
    @Test func aHeldFolderWithADefaultACLStillGetsMode0640() throws {
        let directory = try TemporaryDirectory()
        let previous = umask(0o022)
        defer { umask(previous) }
        let publisher = Publisher(directory: directory.file("devices"))
        try publisher.prepare()
        try setDefaultACL(publisher.directory, owner: 4, group: 0, other: 0)
        let folder = try publisher.openFolder()
        #expect(folder.setsMode, "a folder with a default ACL: the mode is set after open")
        try publisher.write("a", Array("{}".utf8), in: folder)
        var status = stat()
        stat(publisher.path(of: "a"), &status)
        #expect(status.st_mode & 0o777 == 0o640, "mode \(String(status.st_mode & 0o777, radix: 8))")
    }

    @Test func creationModeIsExactOnlyUnderAUmaskThatKeepsItAndWithoutADefaultACL() throws {
        let directory = try TemporaryDirectory()
        let plain = directory.file("plain"), withACL = directory.file("acl")
        try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: withACL, withIntermediateDirectories: false)
        try setDefaultACL(withACL, owner: 6, group: 4, other: 0)
        let plainFolder = open(plain, O_RDONLY | O_DIRECTORY), aclFolder = open(withACL, O_RDONLY | O_DIRECTORY)
        defer { close(plainFolder); close(aclFolder) }
        for (mask, exact) in [(mode_t(0o022), true), (0o027, true), (0o000, true), (0o037, true), (0o077, false), (0o057, false), (0o226, false)] {
            let previous = umask(mask)
            defer { umask(previous) }
            #expect(CreationMode.processUmask() == mask)
            #expect(CreationMode.isExact(0o640, in: plainFolder) == exact, "umask \(String(mask, radix: 8))")
            #expect(!CreationMode.isExact(0o640, in: aclFolder), "umask \(String(mask, radix: 8)), default ACL")
        }
    }

    /// On a file system outside the kernel's own rules (ramfs stands in for NFS, SMB or FUSE
    /// here: mounted for the test) nothing is predicted: the mode is set after each open, and the
    /// files are 0640. tmpfs, where /run is, is predicted like ext4.
    @Test func aFolderOnAnotherKindOfFileSystemSetsTheModeItself() throws {
        let directory = try TemporaryDirectory()
        let previous = umask(0o022)
        defer { umask(previous) }
        let shm = try TemporaryDirectory(in: "/dev/shm")
        let tmpfs = open(shm.path, O_RDONLY | O_DIRECTORY)
        defer { close(tmpfs) }
        #expect(CreationMode.isExact(0o640, in: tmpfs), "tmpfs under umask 022")

        let mountPoint = directory.file("ramfs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let mounted = mount("authinfod-test", mountPoint, "ramfs", 0, "mode=0755")
        #expect(mounted == 0, "cannot mount a ramfs for the test (root with CAP_SYS_ADMIN needed): \(String(cString: strerror(errno)))")
        guard mounted == 0 else { return }
        defer {
            umount2(mountPoint, Int32(MNT_DETACH))
            withExtendedLifetime(directory) {}  // removed only once unmounted
        }
        let publisher = Publisher(directory: mountPoint + "/devices")
        try publisher.prepare()
        let folder = try publisher.openFolder()
        #expect(folder.setsMode, "ramfs: the mode is set after open")
        #expect(!CreationMode.isExact(0o640, in: folder.descriptor))
        try publisher.write("a", Array("{}".utf8), in: folder)
        var status = stat()
        stat(publisher.path(of: "a"), &status)
        #expect(status.st_mode & 0o777 == 0o640, "mode \(String(status.st_mode & 0o777, radix: 8))")
    }

    /// Gives `path` a default ACL of only its owner, group and other entries (the
    /// `system.posix_acl_default` attribute, version 2, as setfacl writes it); fails the test
    /// when the file system refuses it.
    func setDefaultACL(_ path: String, owner: UInt16, group: UInt16, other: UInt16) throws {
        var bytes: [UInt8] = [2, 0, 0, 0]
        for (tag, permissions) in [(UInt16(0x01), owner), (0x04, group), (0x20, other)] {
            bytes += [UInt8(tag & 0xff), UInt8(tag >> 8), UInt8(permissions), 0, 0xff, 0xff, 0xff, 0xff]
        }
        let result = setxattr(path, "system.posix_acl_default", bytes, bytes.count, 0)
        #expect(result == 0, "cannot set a default ACL on \(path): \(String(cString: strerror(errno)))")
        guard result == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    @Test func republishingWritesWhatIsMissingOrDifferentFromManyThreadsAndStopsAtTheFirstFailure() throws {
        let directory = try TemporaryDirectory()
        let publisher = Publisher(directory: directory.file("devices"))
        try publisher.prepare()
        func document(_ id: String, _ value: String) -> AuthInfoDocument {
            AuthInfoDocument(deviceID: id, authinfo: value, fetchedAt: 1_763_800_000, expiresAt: 1_763_803_600)
        }
        func text(_ document: AuthInfoDocument) -> String { String(decoding: document.publishedJSON(), as: UTF8.self) }
        try directory.write("devices/same.json", text(document("same", "v1")))
        try directory.write("devices/old.json", text(document("old", "v0")))
        let (present, removed) = try publisher.clearLeftovers { _ in true }
        #expect(present == ["same.json", "old.json"] && removed == 0)
        let republisher = Republisher(publisher, present: present)
        let documents = (0..<2000).map { (id: "dev-\($0)", document: document("dev-\($0)", "n\($0)")) }
            + [(id: "same", document: document("same", "v1")), (id: "old", document: document("old", "v1"))]
        for start in stride(from: 0, to: documents.count, by: 100) {
            republisher.add(Array(documents[start..<min(start + 100, documents.count)]))
        }
        let progress = republisher.finish()
        #expect(progress.failure == nil)
        #expect(progress.written == 2001, "all but the file that already held its document")
        for (id, document) in documents { #expect(publisher.read(id) == document.publishedJSON(), "\(id)") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("devices")).count == documents.count, "no temporary file left")

        // A file that appeared after the listing is replaced all the same.
        let stale = Republisher(publisher, present: try publisher.clearLeftovers { _ in true }.present)
        try directory.write("devices/late.json", text(document("late", "v0")))
        stale.add([(id: "late", document: document("late", "v2"))])
        #expect(stale.finish().written == 1)
        #expect(publisher.read("late") == document("late", "v2").publishedJSON())

        // A device whose name is taken by a folder cannot be written: that is reported, and the
        // batches after it are skipped rather than failing one by one.
        try FileManager.default.createDirectory(atPath: directory.file("devices/blocked.json/inside"), withIntermediateDirectories: true)
        let failing = Republisher(publisher, present: try publisher.clearLeftovers { _ in true }.present)
        failing.add([(id: "blocked", document: document("blocked", "v"))])
        _ = failing.finish()
        failing.add([(id: "after", document: document("after", "v"))])
        let failed = failing.finish()
        #expect(failed.failure?.description.contains("blocked.json") == true, "\(String(describing: failed.failure))")
        #expect(failed.written == 0)
        #expect(publisher.read("after") == nil)
    }

    @Test func weakTagsAre64BitsOfTheDigestInBase64URLAndFitInline() {
        for seed in 0..<200 {
            let digest = SHA256.digest(Array("value \(seed)".utf8))
            let tag = ServedDocuments.Entry.weakTag(digest)
            let base64 = Data(digest.prefix(8)).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(tag == "W/\"\(base64)\"")
            #expect(tag.utf8.count == 15, "15 bytes: a small (inline) string")
        }
    }

    @Test func stackBytesWriteInOrderWithDecimalNumbers() {
        for value: UInt64 in [0, 7, 9, 10, 99, 100, 4_194_304, 10_000_000_000_000_000_000, .max] {
            let text = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer -> String in
                var bytes = StackBytes(buffer)
                bytes.append(UInt8(ascii: "["))
                bytes.appendDecimal(value)
                bytes.append("]".utf8)
                return String(decoding: bytes.written, as: UTF8.self)
            }
            #expect(text == "[\(value)]")
        }
    }

    /// A served value's tag comes from this digest: it must change with anything the document
    /// says, and only with that (the times as the document writes them, in whole seconds).
    @Test func aDocumentsDigestChangesWithWhatItSaysAndOnlyThat() {
        let base = AuthInfoDocument(deviceID: "dev-0001", authinfo: "v1", fetchedAt: 1_763_800_000.2, expiresAt: 1_763_803_600)
        #expect(base.digest().count == 32)
        #expect(base.digest() == AuthInfoDocument(deviceID: "dev-0001", authinfo: "v1", fetchedAt: 1_763_800_000.9, expiresAt: 1_763_803_600.5).digest(),
                "the same whole seconds: the same document, the same digest")
        let others = [AuthInfoDocument(deviceID: "dev-0001", authinfo: "v2", fetchedAt: 1_763_800_000, expiresAt: 1_763_803_600),
                      AuthInfoDocument(deviceID: "dev-0001", authinfo: "v1", fetchedAt: 1_763_800_001, expiresAt: 1_763_803_600),
                      AuthInfoDocument(deviceID: "dev-0001", authinfo: "v1", fetchedAt: 1_763_800_000, expiresAt: 1_763_803_601),
                      AuthInfoDocument(deviceID: "dev-0002", authinfo: "v1", fetchedAt: 1_763_800_000, expiresAt: 1_763_803_600),
                      AuthInfoDocument(deviceID: "dev-0001", authinfo: "v1\u{0}", fetchedAt: 1_763_800_000, expiresAt: 1_763_803_600),
                      AuthInfoDocument(deviceID: "dev-0001", authinfo: "", fetchedAt: 1_763_800_000, expiresAt: 1_763_803_600)]
        for other in others { #expect(other.digest() != base.digest(), "\(other)") }
        #expect(Set(others.map { $0.digest() }).count == others.count)
    }

    @Test func documentsAreCompactJSONInContractOrderAndEscaped() throws {
        let document = AuthInfoDocument(deviceID: "dev-0001", authinfo: "a\"b\\c\n\u{01}", fetchedAt: 1_763_800_000.7, expiresAt: 1_763_803_600)
        let text = String(decoding: document.json(state: .fresh), as: UTF8.self)
        #expect(text == #"{"device_id":"dev-0001","authinfo":"a\"b\\c\n\u0001","fetched_at":1763800000,"expires_at":1763803600,"state":"fresh"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(parsed?["authinfo"] as? String == "a\"b\\c\n\u{01}")
    }

    @Test func statusStatesFollowValidityFailuresAndPlan() {
        var record = DeviceRecord(deviceID: "a")
        #expect(DeviceStatus(record, nextAttemptAt: nil, now: 100).state == .pending)
        record.authinfo = "x"
        record.fetchedAt = 0
        record.expiresAt = 200
        #expect(DeviceStatus(record, nextAttemptAt: 150, now: 100).state == .fresh)
        #expect(DeviceStatus(record, nextAttemptAt: 50, now: 100).state == .stale)
        record.consecutiveFailures = 1
        #expect(DeviceStatus(record, nextAttemptAt: 150, now: 100).state == .stale)
        #expect(DeviceStatus(record, nextAttemptAt: 150, now: 250).state == .expired)
        record.rejected = true
        #expect(DeviceStatus(record, nextAttemptAt: 150, now: 100).state == .rejected)
    }

    /// The summary counts each device once by its state, and its runway is the first expiry
    /// (0 once any device has no valid value); with no devices there is no runway.
    @Test func theSummaryCountsStatesAndTheRunwayWithoutRows() {
        func row(_ id: String, authinfo: String?, expiresAt: Double?, failures: Int = 0, rejected: Bool = false) -> DeviceStatus {
            var record = DeviceRecord(deviceID: id)
            record.authinfo = authinfo
            record.fetchedAt = authinfo == nil ? nil : 0
            record.expiresAt = expiresAt
            record.consecutiveFailures = failures
            record.rejected = rejected
            return DeviceStatus(record, nextAttemptAt: 150, now: 100)
        }
        let valid = [row("a", authinfo: "x", expiresAt: 400), row("b", authinfo: "x", expiresAt: 250, failures: 2),
                     row("c", authinfo: "x", expiresAt: 90), row("d", authinfo: "x", expiresAt: 900, rejected: true)]
        let report = StatusReport(generatedAt: 100, source: "daemon", devices: valid)
        #expect(report.summary.devices == 4 && report.count(.fresh) == 1 && report.count(.stale) == 1 && report.count(.expired) == 1)
        #expect(report.count(.rejected) == 1 && report.count(.pending) == 0 && report.runway == 0)
        let live = StatusReport(generatedAt: 100, source: "daemon", devices: [valid[0], valid[1]])
        #expect(live.runway == 150 && live.summaryLine == "2 devices: 1 fresh, 1 stale, 0 expired, 0 rejected, 0 needs_raw_data, 0 pending; runway 2m30s")
        let waiting = StatusReport(generatedAt: 100, source: "daemon", devices: [valid[0], row("e", authinfo: nil, expiresAt: nil)])
        #expect(waiting.runway == 0 && waiting.count(.pending) == 1)
        #expect(StatusReport(generatedAt: 100, source: "daemon", devices: []).summary == StatusSummary())
        #expect(StatusSummary().runway == nil && StatusSummary().line == "0 devices: 0 fresh, 0 stale, 0 expired, 0 rejected, 0 needs_raw_data, 0 pending; runway n/a")
    }

    @Test func loggerPrefixesJournalPrioritiesOnlyWhenStderrIsTheJournal() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("log")
        let fd = open(path, O_WRONLY | O_CREAT, 0o600)
        defer { close(fd) }
        var status = stat()
        fstat(fd, &status)
        let journal = Logger(level: .debug, fd: fd, environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino)"])
        journal.error("expired", ["device": "d1", "hint": "two words"])
        journal.info("refreshed", ["device": "d1", "skip": nil])
        let plain = Logger(level: .warning, fd: fd, environment: ["JOURNAL_STREAM": "1:2"])
        plain.info("hidden", [:])
        plain.warning("refresh_failed", ["error": "a \"quoted\" word"])
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0] == "<3>level=error event=expired device=d1 hint=\"two words\"")
        #expect(lines[1] == "<6>level=info event=refreshed device=d1")
        #expect(lines[2].hasPrefix("ts="))
        #expect(lines[2].hasSuffix("level=warning event=refresh_failed error=\"a \\\"quoted\\\" word\""))
    }

    @Test func loggerTimestampsAreRFC3339UTCWithMilliseconds() {
        #expect(Logger.timestamp(0) == "1970-01-01T00:00:00.000Z")
        #expect(Logger.timestamp(1_763_800_000.5) == "2025-11-22T08:26:40.500Z")
        #expect(Logger.timestamp(978_307_199.25) == "2000-12-31T23:59:59.250Z")
        #expect(Logger.timestamp(253_402_300_799) == "9999-12-31T23:59:59.000Z")
    }
}
