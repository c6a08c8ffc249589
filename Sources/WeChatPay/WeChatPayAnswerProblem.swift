/// Why the body of a 2xx answer was not accepted (the client reports it as a malformed answer).
public struct WeChatPayAnswerProblem: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
