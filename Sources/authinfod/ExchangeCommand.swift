import AuthInfoDaemon
import FoundationEssentials
import SystemCalls
import WeChatPay

extension Commands {
    /// `exchange DEVICE_ID (--raw-data-file F | --raw-data -)`: what a terminal's app does, from
    /// the shell: hands the running daemon new raw_data and prints the authinfo document it
    /// answers with. Exit 0 with the document (a note on stderr when it is the cached one), 1 when
    /// the gateway refused the raw_data or no value could be had.
    static func exchange(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "exchange", valued: ["config", "raw-data-file", "raw-data"])
        guard options.positionals.count == 1 else { throw UsageError("exchange: exactly one DEVICE_ID is required", command: "exchange") }
        let id = options.positionals[0]
        let bytes: [UInt8]
        switch (options.value("raw-data-file"), options.value("raw-data")) {
        case (let file?, nil):
            guard let data = FileManager.default.contents(atPath: file) else { return .failure("exchange: cannot read --raw-data-file \(file)") }
            bytes = Array(data)
        case (nil, "-"?):
            do {
                // One byte past the limit tells input cut short from input that fits; the daemon
                // holds raw_data to its own, smaller limit and says so.
                bytes = try StandardStream.readInput(limit: (1 << 20) + 1)
            } catch {
                return .failure("exchange: cannot read the raw_data from standard input: \(error)")
            }
            guard bytes.count <= 1 << 20 else { return .failure("exchange: the raw_data on standard input is over 1 MiB; nothing was sent") }
        default:
            throw UsageError("exchange: give the raw_data with --raw-data-file FILE or --raw-data - (standard input)", command: "exchange")
        }
        guard let rawData = String(validating: bytes, as: UTF8.self)?.trimmingWhitespace(), !rawData.isEmpty else {
            return .failure("exchange: the raw_data is empty or not UTF-8")
        }
        let configuration: Configuration
        switch loadConfigurationOnly(options.value("config")) {
        case .success(let loaded): configuration = loaded
        case .failure(let result): return result
        }
        guard let socket = configuration.listen.unixSocket else {
            return .failure("exchange: listen.unix_socket is off in \(configuration.file), so there is no way to reach the daemon")
        }
        let body = Array("{\"raw_data\":\(JSONText.quote(rawData))}".utf8)
        let response: UnixSocketClient.Response
        switch Result(catching: { () throws(UnixSocketClient.Failure) in
            try UnixSocketClient.request(socket: socket, method: "POST", path: "/v1/devices/\(id)/authinfo", body: body,
                                         timeout: configuration.api.timeout + 5)
        }) {
        case .success(let answer): response = answer
        case .failure(.notRunning(let reason)): return .failure("exchange: \(reason); is authinfod running? (systemctl status authinfod)")
        case .failure(let error): return .failure("exchange: \(error)")
        }
        let fields = Self.members(response.body)
        switch response.status {
        case 200:
            print(String(decoding: response.body, as: UTF8.self))
            if case .object(let problem)? = fields.first(where: { $0.key == "refresh_error" })?.value {
                let reason = "\(Self.string("code", in: problem) ?? "?"): \(Self.string("message", in: problem) ?? "")"
                StandardStream.error.write("exchange: no new value (\(reason)); this is the cached one, still valid\n")
            }
            return .success
        case 422:
            let reason = "\(Self.string("code", in: fields) ?? "?"): \(Self.string("message", in: fields) ?? "")"
            return .failure("exchange: the gateway refused this raw_data (\(reason)); generate new raw_data on the device")
        case 503:
            return .failure("exchange: no value: the gateway cannot be reached and no valid value is cached; try again later")
        case 404:
            return .failure("exchange: unknown device \"\(id)\" (not in \(configuration.file))")
        default:
            return .failure("exchange: \(answered(response.status))")
        }
    }

    /// The members of a JSON object answer (none when it is not one).
    private static func members(_ body: [UInt8]) -> [(key: String, value: JSONValue)] {
        if case .object(let members)? = try? JSONParser.parse(body) { return members }
        return []
    }

    private static func string(_ name: String, in members: [(key: String, value: JSONValue)]) -> String? {
        if case .string(let value)? = members.first(where: { $0.key == name })?.value { return value }
        return nil
    }
}
