extension StringProtocol {
    /// The text without leading and trailing spaces, tabs, carriage returns and line feeds
    /// (what a file or a terminal's form adds around a value; Unicode spaces are kept, being
    /// part of no value the daemon reads).
    public func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
