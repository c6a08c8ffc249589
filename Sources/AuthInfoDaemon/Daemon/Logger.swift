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
        // Built as bytes: a refresh logs a line, so this is on every refresh's path.
        var line: [UInt8] = []
        line.reserveCapacity(256)
        if journal {
            line += "<\(Self.priority(level))>".utf8
        } else {
            line += "ts=".utf8
            Self.appendTimestamp(clock(), to: &line)
            line.append(0x20)
        }
        line += "level=".utf8
        line += level.rawValue.utf8
        line += " event=".utf8
        line += event.utf8
        for (key, value) in fields {
            guard let value else { continue }
            line.append(0x20)
            line += key.utf8
            line.append(0x3D)
            Self.append(value, to: &line)
        }
        line.append(0x0A)
        // A log that cannot be written has nowhere to say so.
        var offset = 0
        while offset < line.count, let written = try? SystemCall.run("write", { line.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) } }),
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

    /// `value` as a logfmt value: quoted (and escaped) when it is empty or holds a space, `=`,
    /// a quote, a backslash or a control character.
    static func format(_ value: Any) -> String {
        var bytes: [UInt8] = []
        append(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func append(_ value: Any, to line: inout [UInt8]) {
        switch value {
        case let text as String: appendQuotedIfNeeded(text.utf8, to: &line)
        case let number as Int: line += String(number).utf8
        case let number as Double:
            line += (number.rounded() == number && abs(number) < 1e15 ? String(Int(number)) : CFormat.string("%.3f", number)).utf8
        default: appendQuotedIfNeeded("\(value)".utf8, to: &line)
        }
    }

    private static func appendQuotedIfNeeded(_ text: String.UTF8View, to line: inout [UInt8]) {
        func special(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x3D || byte == 0x22 || byte == 0x5C || byte < 0x20 }
        guard text.isEmpty || text.contains(where: special) else { return line += text }
        line.append(0x22)
        for byte in text {
            switch byte {
            case 0x22: line += [0x5C, 0x22]
            case 0x5C: line += [0x5C, 0x5C]
            case 0x0A: line += [0x5C, 0x6E]
            case 0x0D: line += [0x5C, 0x72]
            case 0x09: line += [0x5C, 0x74]
            case ..<0x20: line += "\\u{\(String(byte, radix: 16))}".utf8
            default: line.append(byte)
            }
        }
        line.append(0x22)
    }

    static func timestamp(_ seconds: Double) -> String {
        var bytes: [UInt8] = []
        appendTimestamp(seconds, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `seconds` since 1970 as RFC 3339 UTC with milliseconds (`2025-11-22T08:26:40.500Z`).
    private static func appendTimestamp(_ seconds: Double, to line: inout [UInt8]) {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let millis = Int((seconds - seconds.rounded(.down)) * 1000)
        func digits(_ value: Int, _ width: Int, then separator: UInt8) {
            // A clock before year 0 is nonsense, not a reason to trap in the logger.
            let value = max(0, value)
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor <= value / 10 { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                line.append(0x30 + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
            line.append(separator)
        }
        digits(Int(parts.tm_year) + 1900, 4, then: 0x2D)
        digits(Int(parts.tm_mon) + 1, 2, then: 0x2D)
        digits(Int(parts.tm_mday), 2, then: 0x54)
        digits(Int(parts.tm_hour), 2, then: 0x3A)
        digits(Int(parts.tm_min), 2, then: 0x3A)
        digits(Int(parts.tm_sec), 2, then: 0x2E)
        digits(millis, 3, then: 0x5A)
    }
}
