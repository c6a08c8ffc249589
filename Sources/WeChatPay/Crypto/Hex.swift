/// Bytes as hexadecimal text, built byte by byte (`String(format:)` goes through Foundation's
/// formatter and a dynamic cast per byte; this is on the refresh path).
public enum Hex {
    /// Lower-case hex of `bytes`.
    public static func lowercase(_ bytes: some Sequence<UInt8>) -> String {
        encode(bytes, digits: "0123456789abcdef")
    }

    /// Upper-case hex of `bytes`.
    public static func uppercase(_ bytes: some Sequence<UInt8>) -> String {
        encode(bytes, digits: "0123456789ABCDEF")
    }

    private static func encode(_ bytes: some Sequence<UInt8>, digits: StaticString) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(bytes.underestimatedCount * 2)
        let table = digits.utf8Start
        for byte in bytes {
            text.append(table[Int(byte >> 4)])
            text.append(table[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
