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
        let table = digits.utf8Start
        // The usual case (an array or a slice of one): written straight into the string's storage.
        let direct = bytes.withContiguousStorageIfAvailable { source in
            String(unsafeUninitializedCapacity: source.count * 2) { text in
                for (index, byte) in source.enumerated() {
                    text[2 * index] = table[Int(byte >> 4)]
                    text[2 * index + 1] = table[Int(byte & 0x0F)]
                }
                return source.count * 2
            }
        }
        if let direct { return direct }
        var text: [UInt8] = []
        text.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            text.append(table[Int(byte >> 4)])
            text.append(table[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
