/// A configuration that is refused: which file, which key (`merchant.private_key_file`,
/// `devices[2].device_id`, …) and what is wrong with it, in one line.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let key: String?
    public let message: String

    public init(file: String, key: String?, message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    /// `file: key: message` on one line: control characters quoted from the config (a key
    /// spelled with `\n`, say) are shown escaped, so the error cannot spill onto more lines.
    public var description: String {
        let text = key.map { "\(file): \($0): \(message)" } ?? "\(file): \(message)"
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var escaped = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F {
                escaped.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}
