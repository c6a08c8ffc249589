import WeChatPay

/// Reading a `status --json` document back (the CLI renders the daemon's answer as a table).
extension StatusReport {
    struct Unreadable: Error {}

    public init(json bytes: [UInt8]) throws {
        guard case .object(let root) = try JSONParser.parse(bytes) else { throw Unreadable() }
        func field(_ members: [(key: String, value: JSONValue)], _ name: String) -> JSONValue? {
            members.first { $0.key == name }?.value
        }
        func number(_ value: JSONValue?) -> Double? {
            if case .number(let number)? = value { return number }
            return nil
        }
        func string(_ value: JSONValue?) -> String? {
            if case .string(let text)? = value { return text }
            return nil
        }
        guard let generatedAt = number(field(root, "generated_at")), case .array(let rows)? = field(root, "devices") else { throw Unreadable() }
        var devices: [DeviceStatus] = []
        for row in rows {
            guard case .object(let members) = row, let id = string(field(members, "device_id")),
                  let state = string(field(members, "state")).flatMap(DeviceState.init(rawValue:)) else { throw Unreadable() }
            var record = DeviceRecord(deviceID: id)
            record.fetchedAt = number(field(members, "fetched_at"))
            record.expiresAt = number(field(members, "expires_at"))
            record.consecutiveFailures = Int(number(field(members, "consecutive_failures")) ?? 0)
            if case .object(let error)? = field(members, "last_error") {
                record.lastError = RecordedError(code: string(field(error, "code")) ?? "", message: string(field(error, "message")) ?? "",
                                                 httpStatus: number(field(error, "http_status")).map { Int($0) },
                                                 requestID: string(field(error, "request_id")), at: number(field(error, "at")) ?? 0)
            }
            var status = DeviceStatus(record, nextAttemptAt: number(field(members, "next_refresh_in_seconds")).map { generatedAt + $0 }, now: generatedAt)
            status.state = state
            devices.append(status)
        }
        self.init(generatedAt: generatedAt, source: string(field(root, "source")) ?? "daemon", devices: devices)
        if case .array(let notes)? = field(root, "notes") { self.notes = notes.compactMap { string($0) } }
        clockOffsetSeconds = number(field(root, "clock_offset_seconds"))
    }
}
