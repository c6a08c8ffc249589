extension JSONValue {
    /// The member `key` of an object (the first, were there several); nil for anything else.
    public subscript(member key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The text of a string value; nil for anything else.
    public var string: String? {
        guard case .string(let text) = self else { return nil }
        return text
    }

    /// The value of a number; nil for anything else.
    public var number: Double? {
        guard case .number(let value) = self else { return nil }
        return value
    }

    /// Whether the value is an object or an array (what JSON calls structured).
    public var isContainer: Bool {
        switch self {
        case .object, .array: true
        default: false
        }
    }

    /// The value as compact JSON, object members sorted by key when `sortedKeys` (so equal
    /// values read the same), otherwise in their order. Integral numbers up to 2^53 are written
    /// without a fraction, as they were most likely sent.
    public func text(sortedKeys: Bool = true) -> String {
        var bytes: [UInt8] = []
        write(into: &bytes, sortedKeys: sortedKeys)
        return String(decoding: bytes, as: UTF8.self)
    }

    private func write(into bytes: inout [UInt8], sortedKeys: Bool) {
        switch self {
        case .null: bytes += "null".utf8
        case .bool(let value): bytes += (value ? "true" : "false").utf8
        case .number(let value):
            if value.rounded() == value, abs(value) <= 9_007_199_254_740_992 {
                bytes += String(Int64(value)).utf8
            } else {
                bytes += "\(value)".utf8
            }
        case .string(let text): JSONText.append(text, to: &bytes)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                element.write(into: &bytes, sortedKeys: sortedKeys)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            let ordered = sortedKeys ? members.sorted { $0.key < $1.key } : members
            for (index, member) in ordered.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                JSONText.append(member.key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                member.value.write(into: &bytes, sortedKeys: sortedKeys)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }
}
