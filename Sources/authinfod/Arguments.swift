/// A command's arguments: positionals and `--name value` / `--name=value` / `--flag` options,
/// checked against what the command accepts.
struct Arguments {
    private(set) var positionals: [String] = []
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    /// Parses `arguments`; `valued` options take a value, `switches` take none. Anything else is
    /// a usage error naming it.
    init(_ arguments: [String], command: String, valued: Set<String>, switches: Set<String> = []) throws(UsageError) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--"), argument.count > 2 else {
                if argument.hasPrefix("-") && argument != "-" { throw UsageError("\(command): unknown option \(argument)", command: command) }
                positionals.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if switches.contains(name) {
                guard value == nil else { throw UsageError("\(command): --\(name) takes no value", command: command) }
                flags.insert(name)
            } else if valued.contains(name) {
                if value == nil {
                    guard index < arguments.count else { throw UsageError("\(command): --\(name) needs a value", command: command) }
                    value = arguments[index]
                    index += 1
                }
                guard values[name] == nil else { throw UsageError("\(command): --\(name) given twice", command: command) }
                values[name] = value
            } else {
                throw UsageError("\(command): unknown option --\(name)", command: command)
            }
        }
    }

    func value(_ name: String) -> String? { values[name] }
    func flag(_ name: String) -> Bool { flags.contains(name) }
}

/// A command line that does not fit the command: exit status 2.
struct UsageError: Error {
    let message: String
    let command: String?

    init(_ message: String, command: String? = nil) {
        self.message = message
        self.command = command
    }
}
