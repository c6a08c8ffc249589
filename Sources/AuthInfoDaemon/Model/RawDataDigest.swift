import WeChatPay

/// A raw_data's fingerprint: the first 128 bits of its SHA-256. What a record keeps to tell
/// raw_data apart without storing every copy; held inline in 16 bytes (as 64 hex digits it took
/// about 100 bytes of heap per device, and a record stays within 128 bytes).
///
/// 128 bits are plenty for what it decides (is this the raw_data already sent, or already
/// refused?): two raw_data with one fingerprint take about 2^64 tries by someone who picks both,
/// and would only earn that device its own value. The cache stores it as 32 lower-case hex
/// digits; a full 64-digit SHA-256 written by an earlier version reads as its first half.
public struct RawDataDigest: Sendable, Hashable {
    private let high: UInt64
    private let low: UInt64

    /// No raw_data (`CompactDigest`): all zero bits.
    fileprivate static let zero = RawDataDigest(high: 0, low: 0)

    private init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The fingerprint of `rawData`.
    public static func of(_ rawData: String) -> RawDataDigest {
        RawDataDigest(leading: SHA256.digest(rawData.utf8))
    }

    /// From the first 16 of `bytes` (at least 16).
    private init(leading bytes: [UInt8]) {
        func word(_ at: Int) -> UInt64 { bytes[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        self.init(high: word(0), low: word(8))
    }

    /// From its hex digits as the cache stores them (32, or 64 from an earlier version); nil for
    /// anything else.
    init?(hex: String) {
        var text = hex
        guard let digest = text.withUTF8(Self.init(hexDigits:)) else { return nil }
        self = digest
    }

    /// `init?(hex:)` from the digits' bytes, read in place (a start reads two per device, straight
    /// from the cache's rows).
    init?(hexDigits digits: UnsafeBufferPointer<UInt8>) {
        guard digits.count == 32 || digits.count == 64 else { return nil }
        // Every digit is checked (a 64-digit one too), only the first 32 are kept.
        var invalid: UInt8 = 0
        func word(_ start: Int) -> UInt64 {
            var word: UInt64 = 0
            for index in start..<start + 16 {
                let value = Self.values[Int(digits[index])]
                invalid |= value
                word = word << 4 | UInt64(value & 0x0F)
            }
            return word
        }
        let high = word(0), low = word(16)
        if digits.count == 64 { _ = (word(32), word(48)) }
        guard invalid & 0xF0 == 0 else { return nil }
        self.init(high: high, low: low)
    }

    /// Each byte's value as a hex digit, or 0xFF for a byte that is none: a start reads 200,000
    /// fingerprints.
    private static let values: [UInt8] = (0...255).map { value(of: UInt8($0)) ?? 0xFF }

    /// The 32 lower-case hex digits.
    public var hex: String {
        withUnsafeBytes(of: (high.bigEndian, low.bigEndian)) { Hex.lowercase($0) }
    }

    private static func value(of digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// An optional `RawDataDigest` in 16 bytes instead of 24 (in a struct): all zero bits stand for
/// none (a digest of all zeros read from the cache reads as none, and the next refresh
/// fingerprints its raw_data again).
@propertyWrapper
public struct CompactDigest: Sendable, Equatable {
    private var stored = RawDataDigest.zero

    public init(wrappedValue: RawDataDigest?) {
        self.wrappedValue = wrappedValue
    }

    public var wrappedValue: RawDataDigest? {
        get { stored == .zero ? nil : stored }
        set { stored = newValue ?? .zero }
    }
}
