import WeChatPay
/// Reads one JSON object of the configuration, remembering which keys were read so the rest
/// can be refused as unknown (typos), and naming every problem by its full key path.
struct ConfigObject {
    let file: String
    /// Where the object sits ("listen.tcp_clients[0]"), made only when a key or a message needs
    /// it: a config may hold 100,000 objects, and most are never named.
    var path: String { Self.path(parent, index) }
    private let parent: String
    private let index: Int?
    private let members: [(key: String, value: JSONValue)]
    /// Which members were read, by position: a bit each for the first 64, a list for the rest
    /// (made only for an object that large). A config may hold 100,000 objects: marking a key
    /// read, and finding the keys nobody read, compares no strings.
    private var readMembers: UInt64 = 0
    private var readBeyond64: [Bool] = []
    /// Names read so far, present or not, for the suggestions of error messages.
    private var consumed: [String] = []

    init(file: String, path: String, value: JSONValue) throws(ConfigError) {
        try self.init(file: file, parent: path, index: nil, value: value)
    }

    /// Element `index` of the array at `array` (a key path).
    init(file: String, array: String, index: Int, value: JSONValue) throws(ConfigError) {
        try self.init(file: file, parent: array, index: index, value: value)
    }

    private init(file: String, parent: String, index: Int?, value: JSONValue) throws(ConfigError) {
        self.file = file
        self.parent = parent
        self.index = index
        guard case .object(let members) = value else {
            let path = Self.path(parent, index)
            throw ConfigError(file: file, key: path.isEmpty ? nil : path, message: "expected an object, found \(value.typeName)")
        }
        self.members = members
        // One allocation for the keys a device reads, not one per doubling (100,000 devices).
        consumed.reserveCapacity(8)
    }

    private static func path(_ parent: String, _ index: Int?) -> String {
        index.map { "\(parent)[\($0)]" } ?? parent
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func error(_ name: String, _ message: String) -> ConfigError {
        ConfigError(file: file, key: key(name), message: message)
    }

    /// The member `name`, `null` included, marked read; nil when absent. (The parser refuses an
    /// object with a key twice, so the first is the only one.)
    private mutating func member(_ name: String) -> JSONValue? {
        consumed.append(name)
        guard let index = members.firstIndex(where: { $0.key == name }) else { return nil }
        if index < 64 {
            readMembers |= 1 << UInt64(index)
        } else {
            if readBeyond64.isEmpty { readBeyond64 = Array(repeating: false, count: members.count - 64) }
            readBeyond64[index - 64] = true
        }
        return members[index].value
    }

    private func wasRead(_ index: Int) -> Bool {
        index < 64 ? readMembers & (1 << UInt64(index)) != 0 : !readBeyond64.isEmpty && readBeyond64[index - 64]
    }

    /// The value at `name`; an explicit `null` counts as absent.
    mutating func value(_ name: String) -> JSONValue? {
        guard let value = member(name), value != .null else { return nil }
        return value
    }

    /// Whether `name` is present with an explicit `null` (which turns an optional feature off).
    mutating func isNull(_ name: String) -> Bool {
        member(name) == .null
    }

    mutating func string(_ name: String) throws(ConfigError) -> String? {
        guard let value = value(name) else { return nil }
        guard case .string(let text) = value else { throw error(name, "expected a string, found \(value.typeName)") }
        guard !text.isEmpty else { throw error(name, "must not be empty") }
        guard !Self.hasControlCharacter(text) else {
            throw error(name, "must not contain control characters")
        }
        return text
    }

    /// Control characters are ASCII: their UTF-8 bytes are themselves and no other byte's. The
    /// bytes are scanned in place where the string keeps them (always, for a parsed one).
    private static func hasControlCharacter(_ text: String) -> Bool {
        let isControl = { (byte: UInt8) in byte < 0x20 || byte == 0x7F }
        return text.utf8.withContiguousStorageIfAvailable { $0.contains(where: isControl) } ?? text.utf8.contains(where: isControl)
    }

    mutating func requiredString(_ name: String) throws(ConfigError) -> String {
        guard let text = try string(name) else { throw missing(name) }
        return text
    }

    /// The error for a required key that is absent: when a key nobody reads resembles it, that
    /// typo is the problem to name ("unknown key \"devics\" (did you mean \"devices\"?)").
    func missing(_ name: String, _ message: String = "is required") -> ConfigError {
        let typo = members.indices.filter { !wasRead($0) && members[$0].key != name }.map { members[$0].key }
            .min { Self.distance($0, name) < Self.distance($1, name) }
        if let typo, Self.distance(typo, name) <= 3 {
            return error(typo, "unknown key (did you mean \"\(name)\"?)")
        }
        return error(name, message)
    }

    /// A number greater than zero (seconds may be fractional).
    mutating func positiveNumber(_ name: String, default fallback: Double) throws(ConfigError) -> Double {
        guard let value = value(name) else { return fallback }
        guard case .number(let number) = value else { throw error(name, "expected a number, found \(value.typeName)") }
        guard number > 0 else { throw error(name, "must be greater than 0, not \(Self.format(number))") }
        return number
    }

    /// A whole number of at least 1.
    mutating func positiveInteger(_ name: String, default fallback: Int) throws(ConfigError) -> Int {
        guard let value = value(name) else { return fallback }
        guard case .number(let number) = value else { throw error(name, "expected a whole number, found \(value.typeName)") }
        guard number >= 1, number <= 1_000_000, number.rounded() == number else {
            throw error(name, "must be a whole number from 1 to 1000000, not \(Self.format(number))")
        }
        return Int(number)
    }

    mutating func number(_ name: String, default fallback: Double) throws(ConfigError) -> Double {
        guard let value = value(name) else { return fallback }
        guard case .number(let number) = value else { throw error(name, "expected a number, found \(value.typeName)") }
        return number
    }

    mutating func bool(_ name: String, default fallback: Bool) throws(ConfigError) -> Bool {
        guard let value = value(name) else { return fallback }
        guard case .bool(let flag) = value else { throw error(name, "expected true or false, found \(value.typeName)") }
        return flag
    }

    mutating func object(_ name: String) throws(ConfigError) -> ConfigObject? {
        guard let value = value(name) else { return nil }
        return try ConfigObject(file: file, path: key(name), value: value)
    }

    mutating func array(_ name: String) throws(ConfigError) -> [JSONValue]? {
        guard let value = value(name) else { return nil }
        guard case .array(let elements) = value else { throw error(name, "expected an array, found \(value.typeName)") }
        return elements
    }

    mutating func stringArray(_ name: String) throws(ConfigError) -> [String]? {
        guard let elements = try array(name) else { return nil }
        var strings: [String] = []
        for (index, element) in elements.enumerated() {
            guard case .string(let text) = element, !text.isEmpty else {
                throw error("\(name)[\(index)]", "expected a non-empty string, found \(element.typeName)")
            }
            strings.append(text)
        }
        return strings
    }

    /// Refuses every key that was not read, suggesting the known key it most resembles.
    func rejectUnknownKeys() throws(ConfigError) {
        for (index, (name, _)) in members.enumerated() where !wasRead(index) {
            var message = "unknown key"
            if let suggestion = consumed.min(by: { Self.distance(name, $0) < Self.distance(name, $1) }), Self.distance(name, suggestion) <= 3 {
                message += " (did you mean \"\(suggestion)\"?)"
            }
            throw error(name, message)
        }
    }

    static func format(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int(number)) : String(number)
    }

    /// Levenshtein distance, for typo suggestions.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
