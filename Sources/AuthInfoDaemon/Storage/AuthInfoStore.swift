import FoundationEssentials
import Glibc
import SystemCalls

/// A database that cannot be used as it is, with what to do about it.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String

    public var description: String { "database \(path): \(message)" }

    init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    init(_ path: String, _ error: SQLiteError) {
        self.init(path, error.description + (error.isStorageFault ? " (check free space and permissions of the database folder)" : ""))
    }
}

/// The SQLite cache, authinfod's source of truth: every device's authinfo, timings, last error
/// and pushed raw_data, and the platform certificates. WAL mode (verified), schema versioned
/// with `user_version`.
///
/// Durability: `synchronous=NORMAL`. A commit is in the write-ahead log (the kernel's page
/// cache) when `COMMIT` returns, so a process killed at any point — SIGKILL, a crash, the OOM
/// killer — loses nothing: SQLite replays the log at the next open. What `NORMAL` gives up is
/// the `fdatasync` per commit (`FULL`), which only a power loss or a kernel crash needs; the
/// owner calls `syncToDisk()` within a second of every commit instead (one `fdatasync` for all
/// commits of that second), so a power loss takes at most the last second of refreshes.
///
/// Not `Sendable`: one instance lives on the daemon's queue.
public final class AuthInfoStore {
    static let schemaVersion = 3
    let connection: SQLiteConnection
    public let path: String

    /// Opens `path`, creating it (mode 0600, folder 0750) and its schema when `readOnly` is
    /// false. Refuses a corrupt database, or one written by a newer authinfod, without touching it.
    public init(path: String, readOnly: Bool = false) throws(StoreError) {
        self.path = path
        if !readOnly {
            let directory = PathText.directory(of: path)
            do {
                try Directories.create(directory, mode: 0o750)
            } catch {
                throw StoreError(path, "cannot create its folder \(directory): \(error.reason)")
            }
            do {
                try FileDescriptor.open(path, O_RDWR | O_CREAT | O_NOFOLLOW, mode: 0o600).close()
            } catch {
                throw StoreError(path, "cannot create or open: \(error.reason)")
            }
        } else if !FileManager.default.fileExists(atPath: path) {
            throw StoreError(path, "does not exist (has the daemon run yet?)")
        }
        do {
            connection = try SQLiteConnection(path: path, readOnly: readOnly, create: !readOnly)
            try connection.execute("PRAGMA busy_timeout = 5000")
        } catch {
            throw StoreError(path, error)
        }
        try checkIntegrity()
        if !readOnly { try prepareForWriting() }
    }

    /// `PRAGMA integrity_check` in full: "ok", or SQLite's first problem.
    public func integrityCheck() throws(StoreError) -> String {
        do {
            return try connection.scalarText("PRAGMA integrity_check") ?? "no answer"
        } catch {
            throw StoreError(path, error)
        }
    }

    private func checkIntegrity() throws(StoreError) {
        let result: String?
        do {
            result = try connection.scalarText("PRAGMA quick_check")
        } catch {
            throw StoreError(path, "is not a readable SQLite database (\(error.message)); it was left untouched: move it aside to start with an empty cache, or restore a backup")
        }
        guard result == "ok" else {
            throw StoreError(path, "is corrupt (quick_check: \(result ?? "no answer")); it was left untouched: move it aside to start with an empty cache, or restore a backup")
        }
        let version = Int((try? connection.scalarText("PRAGMA user_version")) ?? "0") ?? 0
        guard version <= Self.schemaVersion else {
            throw StoreError(path, "has schema version \(version), newer than this authinfod understands (\(Self.schemaVersion)); run a newer authinfod or restore a backup")
        }
    }

    private func prepareForWriting() throws(StoreError) {
        do {
            let mode = try connection.scalarText("PRAGMA journal_mode = WAL")
            guard mode?.lowercased() == "wal" else {
                throw StoreError(path, "cannot switch to WAL journaling (got \(mode ?? "nothing")); is the folder on a filesystem without shared memory support?")
            }
            try connection.execute("PRAGMA synchronous = NORMAL")
            // Writes touch one row at a time; a 512 KiB page cache is plenty (the default is 2 MiB).
            try connection.execute("PRAGMA cache_size = -512")
            try migrate()
        } catch let error as StoreError {
            throw error
        } catch let error as SQLiteError {
            throw StoreError(path, error)
        } catch {
            throw StoreError(path, "\(error)")
        }
    }

    private func migrate() throws(SQLiteError) {
        let version = Int(try connection.scalarText("PRAGMA user_version") ?? "0") ?? 0
        if version < 1 {
            try connection.transaction { () throws(SQLiteError) in
                try connection.execute("""
                    CREATE TABLE devices (
                        device_id TEXT PRIMARY KEY NOT NULL,
                        authinfo TEXT,
                        fetched_at REAL,
                        expires_at REAL,
                        next_attempt_at REAL,
                        consecutive_failures INTEGER NOT NULL DEFAULT 0,
                        rejected INTEGER NOT NULL DEFAULT 0,
                        error_code TEXT,
                        error_message TEXT,
                        error_http_status INTEGER,
                        error_request_id TEXT,
                        error_at REAL,
                        pushed_raw_data TEXT
                    );
                    CREATE TABLE platform_certificates (
                        serial_no TEXT PRIMARY KEY NOT NULL,
                        pem TEXT NOT NULL,
                        downloaded_at REAL NOT NULL
                    );
                    PRAGMA user_version = 1;
                    """)
            }
        }
        if version < 2 {
            // The raw_data lifecycle: which raw_data is in force and since when, whether the
            // gateway refused it, and which one the current value was fetched with.
            try connection.transaction { () throws(SQLiteError) in
                try connection.execute("""
                    ALTER TABLE devices ADD COLUMN raw_data_digest TEXT;
                    ALTER TABLE devices ADD COLUMN raw_data_since REAL;
                    ALTER TABLE devices ADD COLUMN needs_raw_data INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE devices ADD COLUMN fetched_with_raw_data TEXT;
                    PRAGMA user_version = 2;
                    """)
            }
        }
        if version < 3 {
            // raw_data fingerprints are 128 bits (32 hex digits) from here on: the 64-digit ones
            // are cut to the same fingerprint. An earlier authinfod refuses the cache from now on
            // (a newer schema) rather than take every fingerprint for new raw_data and send
            // refused raw_data again.
            try connection.transaction { () throws(SQLiteError) in
                try connection.execute("""
                    UPDATE devices SET raw_data_digest = substr(raw_data_digest, 1, 32) WHERE length(raw_data_digest) = 64;
                    UPDATE devices SET fetched_with_raw_data = substr(fetched_with_raw_data, 1, 32) WHERE length(fetched_with_raw_data) = 64;
                    PRAGMA user_version = 3;
                    """)
            }
        }
    }

    /// Every device row, by id (rows of devices no longer configured included). `expecting`:
    /// about how many rows there are, so the dictionary is sized once.
    public func loadAll(expecting count: Int = 0) throws(StoreError) -> [String: DeviceRecord] {
        var records = [String: DeviceRecord](minimumCapacity: count)
        try forEachRecord { records[$0.deviceID] = $0 }
        return records
    }

    /// Hands `body` every device row in turn (in no particular order) as it is read: a caller
    /// can act on the first rows while the rest are still on disk.
    public func forEachRecord(_ body: (DeviceRecord) -> Void) throws(StoreError) {
        do {
            let statement = try connection.statement("""
                SELECT device_id, authinfo, fetched_at, expires_at, next_attempt_at, consecutive_failures, rejected,
                       error_code, error_message, error_http_status, error_request_id, error_at, pushed_raw_data,
                       raw_data_digest, raw_data_since, needs_raw_data, fetched_with_raw_data FROM devices
                """)
            defer { statement.reset() }
            while try statement.step() {
                guard let id = statement.text(0) else { continue }
                var record = DeviceRecord(deviceID: id)
                record.authinfo = statement.text(1)
                record.fetchedAt = Self.time(statement.double(2))
                record.expiresAt = Self.time(statement.double(3))
                record.nextAttemptAt = Self.time(statement.double(4))
                record.consecutiveFailures = statement.integer(5) ?? 0
                record.rejected = (statement.integer(6) ?? 0) != 0
                if let code = statement.text(7) {
                    record.lastError = RecordedError(code: code, message: statement.text(8) ?? "", httpStatus: statement.integer(9),
                                                     requestID: statement.text(10), at: Self.time(statement.double(11)) ?? 0)
                }
                record.pushedRawData = statement.text(12)
                // A fingerprint that is neither 32 nor 64 hex digits reads as none: the raw_data is
                // fingerprinted again before the next call, and an exchange asks the gateway rather
                // than trust it.
                record.rawDataDigest = statement.withText(13, RawDataDigest.init(hexDigits:))
                record.rawDataSince = Self.time(statement.double(14))
                record.needsRawData = (statement.integer(15) ?? 0) != 0
                record.fetchedWithRawData = statement.withText(16, RawDataDigest.init(hexDigits:))
                body(record)
            }
        } catch {
            throw StoreError(path, error)
        }
    }

    /// A time column as the daemon may use it: nil when NULL or no plausible Unix time (a
    /// damaged cache's infinity, NaN or 1e300 would otherwise trap where a time becomes an
    /// integer, in a document or a log line). ±10^11 s is beyond the year 5000.
    static func time(_ value: Double?) -> Double? {
        guard let value, abs(value) <= 1e11 else { return nil }
        return value
    }

    /// Makes every commit so far survive a power loss: `fdatasync` of the write-ahead log (and,
    /// the first time, of its folder, so the log's name is durable too). Recovery keeps every
    /// commit whose frames were synced and drops a torn tail by its checksums.
    public func syncToDisk() throws(StoreError) {
        let log = path + "-wal"
        let fd = open(log, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            // No log: nothing was committed since the last checkpoint removed it.
            if errno == ENOENT { return }
            throw StoreError(path, "cannot open its write-ahead log to sync it: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard fdatasync(fd) == 0 else { throw StoreError(path, "fdatasync of its write-ahead log failed: \(String(cString: strerror(errno)))") }
        if !folderSynced {
            let folder = open(PathText.directory(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if folder >= 0 {
                folderSynced = fsync(folder) == 0
                close(folder)
            }
        }
    }

    private var folderSynced = false

    /// Copies the write-ahead log into the database file, syncs that, and empties the log
    /// (`wal_checkpoint(TRUNCATE)`). After a failed `fdatasync` the kernel may have dropped the
    /// log's unwritten pages as if they were written; this writes everything again from the
    /// pages SQLite reads back, so a repair does not rest on a log that failed to sync.
    public func checkpoint() throws(StoreError) {
        let busy: String?
        do {
            busy = try connection.scalarText("PRAGMA wal_checkpoint(TRUNCATE)")
        } catch {
            throw StoreError(path, error)
        }
        guard busy == "0" else { throw StoreError(path, "the checkpoint could not complete (busy)") }
    }

    /// Writes `records` in one transaction (durable against a killed process at once, against a
    /// power loss after the next `syncToDisk()`).
    public func save(_ records: [DeviceRecord]) throws(StoreError) {
        do {
            try connection.transaction { () throws(SQLiteError) in
                let statement = try connection.statement("""
                    INSERT INTO devices (device_id, authinfo, fetched_at, expires_at, next_attempt_at, consecutive_failures, rejected,
                                         error_code, error_message, error_http_status, error_request_id, error_at, pushed_raw_data,
                                         raw_data_digest, raw_data_since, needs_raw_data, fetched_with_raw_data)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(device_id) DO UPDATE SET authinfo = excluded.authinfo, fetched_at = excluded.fetched_at,
                        expires_at = excluded.expires_at, next_attempt_at = excluded.next_attempt_at,
                        consecutive_failures = excluded.consecutive_failures, rejected = excluded.rejected,
                        error_code = excluded.error_code, error_message = excluded.error_message,
                        error_http_status = excluded.error_http_status, error_request_id = excluded.error_request_id,
                        error_at = excluded.error_at, pushed_raw_data = excluded.pushed_raw_data,
                        raw_data_digest = excluded.raw_data_digest, raw_data_since = excluded.raw_data_since,
                        needs_raw_data = excluded.needs_raw_data, fetched_with_raw_data = excluded.fetched_with_raw_data
                    """)
                for record in records {
                    try statement.run([
                        .text(record.deviceID), SQLiteValue(record.authinfo), SQLiteValue(record.fetchedAt), SQLiteValue(record.expiresAt),
                        SQLiteValue(record.nextAttemptAt), .integer(record.consecutiveFailures), .integer(record.rejected ? 1 : 0),
                        SQLiteValue(record.lastError?.code), SQLiteValue(record.lastError?.message), SQLiteValue(record.lastError?.httpStatus),
                        SQLiteValue(record.lastError?.requestID), SQLiteValue(record.lastError?.at), SQLiteValue(record.pushedRawData),
                        SQLiteValue(record.rawDataDigest?.hex), SQLiteValue(record.rawDataSince), .integer(record.needsRawData ? 1 : 0),
                        SQLiteValue(record.fetchedWithRawData?.hex),
                    ])
                }
            }
        } catch {
            throw StoreError(path, error)
        }
    }

    /// The persisted platform certificates (PEM) and when they were downloaded.
    public func loadCertificates() throws(StoreError) -> (pems: [String], downloadedAt: Double?) {
        do {
            let statement = try connection.statement("SELECT pem, downloaded_at FROM platform_certificates")
            defer { statement.reset() }
            var pems: [String] = []
            var downloadedAt: Double?
            while try statement.step() {
                if let pem = statement.text(0) { pems.append(pem) }
                downloadedAt = max(downloadedAt ?? 0, Self.time(statement.double(1)) ?? 0)
            }
            return (pems, downloadedAt)
        } catch {
            throw StoreError(path, error)
        }
    }

    /// Replaces the persisted platform certificates with a freshly downloaded set.
    public func saveCertificates(_ certificates: [(serial: String, pem: String)], downloadedAt: Double) throws(StoreError) {
        do {
            try connection.transaction { () throws(SQLiteError) in
                try connection.execute("DELETE FROM platform_certificates")
                let insert = try connection.statement("INSERT INTO platform_certificates (serial_no, pem, downloaded_at) VALUES (?, ?, ?)")
                for certificate in certificates {
                    try insert.run([.text(certificate.serial), .text(certificate.pem), .real(downloadedAt)])
                }
            }
        } catch {
            throw StoreError(path, error)
        }
    }
}
