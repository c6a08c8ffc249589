#if canImport(Glibc)
import Glibc
#endif

/// printf-style formatting through the C library's `vsnprintf`, for the few fixed-width numbers
/// the daemon prints (`%.3f` seconds in log lines, `%02d` in durations). `String(format:)` is
/// Foundation's, which the daemon does not link.
public enum CFormat {
    /// `format` filled with `arguments`, as C's `snprintf` would. The caller passes arguments
    /// matching the format, as with `printf`.
    public static func string(_ format: String, _ arguments: CVarArg...) -> String {
        withVaList(arguments) { list in
            var buffer = [CChar](repeating: 0, count: 64)
            var needed = Int(vsnprintf(&buffer, buffer.count, format, list))
            if needed >= buffer.count {
                buffer = [CChar](repeating: 0, count: needed + 1)
                needed = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
            }
            return String(decoding: buffer[0..<max(0, needed)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}
