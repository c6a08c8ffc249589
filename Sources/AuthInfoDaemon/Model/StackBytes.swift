/// Bytes written one after another into a buffer lent for the moment (a stack allocation made
/// with `withUnsafeTemporaryAllocation`): what a start that makes 100,000 file names and tags
/// uses instead of growing arrays and strings. Every write is checked against the buffer's end,
/// in release builds too.
struct StackBytes {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    /// Bytes written so far, from the buffer's start.
    private(set) var count = 0

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        self.buffer = buffer
    }

    mutating func append(_ byte: UInt8) {
        precondition(count < buffer.count, "StackBytes: more than the \(buffer.count) bytes lent")
        buffer[count] = byte
        count += 1
    }

    mutating func append(_ bytes: some Sequence<UInt8>) {
        for byte in bytes { append(byte) }
    }

    /// `value` in decimal digits.
    mutating func appendDecimal(_ value: UInt64) {
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        repeat {
            append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        } while divisor > 0
    }

    /// The bytes written so far.
    var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[..<count])) }
}
