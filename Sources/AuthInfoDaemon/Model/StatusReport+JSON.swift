import WeChatPay

/// Reading a `status --json` document back (the CLI renders the daemon's answer as a table).
extension StatusReport {
    struct Unreadable: Error {}

    public init(json bytes: [UInt8]) throws {
        let root = try JSONParser.parse(bytes)
        guard let generatedAt = root[member: "generated_at"]?.number, case .array(let rows)? = root[member: "devices"] else { throw Unreadable() }
        var devices: [DeviceStatus] = []
        for row in rows {
            guard let id = row[member: "device_id"]?.string,
                  let state = row[member: "state"]?.string.flatMap(DeviceState.init(rawValue:)) else { throw Unreadable() }
            var record = DeviceRecord(deviceID: id)
            record.fetchedAt = row[member: "fetched_at"]?.number
            record.expiresAt = row[member: "expires_at"]?.number
            record.consecutiveFailures = row[member: "consecutive_failures"]?.number.flatMap { Int(exactly: $0) } ?? 0
            if let error = row[member: "last_error"], case .object = error {
                record.lastError = RecordedError(code: error[member: "code"]?.string ?? "", message: error[member: "message"]?.string ?? "",
                                                 httpStatus: error[member: "http_status"]?.number.flatMap { Int(exactly: $0) },
                                                 requestID: error[member: "request_id"]?.string, at: error[member: "at"]?.number ?? 0)
            }
            var status = DeviceStatus(record, nextAttemptAt: row[member: "next_refresh_in_seconds"]?.number.map { generatedAt + $0 }, now: generatedAt)
            status.state = state
            devices.append(status)
        }
        self.init(generatedAt: generatedAt, source: root[member: "source"]?.string ?? "daemon", devices: devices)
        if case .array(let notes)? = root[member: "notes"] { self.notes = notes.compactMap(\.string) }
        clockOffsetSeconds = root[member: "clock_offset_seconds"]?.number
    }
}
