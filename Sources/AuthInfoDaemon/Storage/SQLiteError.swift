/// A failed SQLite call: the result code, SQLite's message, and the statement it ran.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public let sql: String?

    public var description: String {
        var text = "SQLite error \(code): \(message)"
        if let sql { text += " (in: \(sql.prefix(120)))" }
        return text
    }

    /// SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM: the disk or
    /// permissions, not the data; worth a specific hint in the log.
    public var isStorageFault: Bool { [13, 10, 8, 14, 3].contains(code & 0xFF) }
}
