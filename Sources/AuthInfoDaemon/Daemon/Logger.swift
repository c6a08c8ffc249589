import FoundationEssentials
import Glibc
import Synchronization
import SystemCalls

/// One event per line on stderr in logfmt (`level=info event=refreshed device=dev-0001`), with
/// a syslog priority prefix (`<6>`) when stderr is the journal (`JOURNAL_STREAM` matches it),
/// and an RFC 3339 `ts=` otherwise. Each line is one `write(2)`, so lines never interleave.
///
/// Callers pass only safe fields: authinfo values, raw_data, tokens and keys are never logged.
public final class Logger: Sendable {
    public typealias Level = Configuration.Log.Level

    private let minimum: Atomic<Int>
    private let journal: Bool
    private let fd: Int32
    private let clock: @Sendable () -> Double

    /// A logger writing to `fd` (stderr by default) at `level` and above.
    public init(level: Level, fd: Int32 = 2, environment: [String: String] = ProcessInfo.processInfo.environment,
                clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        minimum = Atomic(Self.rank(level))
        self.fd = fd
        self.clock = clock
        journal = Self.isJournal(fd: fd, environment: environment)
    }

    /// Whether `JOURNAL_STREAM` (`device:inode`) names the file `fd` is open on.
    static func isJournal(fd: Int32, environment: [String: String]) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(fd, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    public func isEnabled(_ level: Level) -> Bool { Self.rank(level) >= minimum.load(ordering: .relaxed) }

    /// Changes the level (config reload).
    public func setLevel(_ level: Level) { minimum.store(Self.rank(level), ordering: .relaxed) }

    private static func rank(_ level: Level) -> Int { Level.allCases.firstIndex(of: level)! }

    /// Logs `event` with `fields` in order. Values are quoted when they need it.
    public func log(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, Any?> = [:]) {
        guard isEnabled(level) else { return }
        var line = ""
        if journal {
            line += "<\(Self.priority(level))>"
        } else {
            line += "ts=\(Self.timestamp(clock())) "
        }
        line += "level=\(level.rawValue) event=\(event)"
        for (key, value) in fields {
            guard let value else { continue }
            line += " \(key)=\(Self.format(value))"
        }
        line += "\n"
        // A log that cannot be written has nowhere to say so.
        var offset = 0
        let bytes = Array(line.utf8)
        while offset < bytes.count, let written = try? SystemCall.run("write", { bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) } }),
              written > 0 {
            offset += written
        }
    }

    public func debug(_ event: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.debug, event, fields) }
    public func info(_ event: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.info, event, fields) }
    public func warning(_ event: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.warning, event, fields) }
    public func error(_ event: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.error, event, fields) }

    static func priority(_ level: Level) -> Int {
        switch level {
        case .debug: 7
        case .info: 6
        case .warning: 4
        case .error: 3
        }
    }

    static func format(_ value: Any) -> String {
        let text: String
        switch value {
        case let number as Double: text = number.rounded() == number && abs(number) < 1e15 ? String(Int(number)) : CFormat.string("%.3f", number)
        default: text = "\(value)"
        }
        let needsQuotes = text.isEmpty || text.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.value < 0x20 || $0 == "\\" }
        guard needsQuotes else { return text }
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\r": quoted += "\\r"
            case "\t": quoted += "\\t"
            default: scalar.value < 0x20 ? (quoted += "\\u{\(String(scalar.value, radix: 16))}") : quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
    }

    static func timestamp(_ seconds: Double) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let millis = Int((seconds - seconds.rounded(.down)) * 1000)
        var text = ""
        text.reserveCapacity(24)
        func digits(_ value: Int, _ width: Int, then separator: String) {
            let number = String(value)
            text += String(repeating: "0", count: max(0, width - number.utf8.count)) + number + separator
        }
        digits(Int(parts.tm_year) + 1900, 4, then: "-")
        digits(Int(parts.tm_mon) + 1, 2, then: "-")
        digits(Int(parts.tm_mday), 2, then: "T")
        digits(Int(parts.tm_hour), 2, then: ":")
        digits(Int(parts.tm_min), 2, then: ":")
        digits(Int(parts.tm_sec), 2, then: ".")
        digits(millis, 3, then: "Z")
        return text
    }
}
