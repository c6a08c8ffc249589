import AuthInfoDaemon
import FoundationEssentials
import WeChatPay

/// What a command ended with: an exit status and, for failures, one line for stderr.
enum CommandResult: Error {
    case success
    case failure(String)
    /// A specific exit status with an optional line for stderr (`get` exits 3 for an expired value).
    case exit(Int32, String?)
}

enum Commands {
    /// `check-config`: validate and summarise, no network, no writes.
    static func checkConfig(_ arguments: [String]) throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "check-config", valued: ["config"])
        guard options.positionals.isEmpty else { throw UsageError("check-config: unexpected argument \(options.positionals[0])", command: "check-config") }
        switch loadConfigurationOnly(options.value("config"), checkingSecrets: true) {
        case .success(let configuration): print(ConfigSummary.text(configuration))
        case .failure(let result): return result
        }
        return .success
    }

    /// `token`: one signed call to the tokens endpoint, the token alone on stdout.
    static func token(_ arguments: [String]) async throws(UsageError) -> CommandResult {
        let options = try Arguments(arguments, command: "token", valued: ["config", "out-user-id", "organization-id"])
        guard options.positionals.isEmpty else { throw UsageError("token: unexpected argument \(options.positionals[0])", command: "token") }
        guard let user = options.value("out-user-id"), let organization = options.value("organization-id") else {
            throw UsageError("token: --out-user-id and --organization-id are required", command: "token")
        }
        for (name, value) in [("--out-user-id", user), ("--organization-id", organization)] {
            guard !value.isEmpty, value.utf8.count <= 128, !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw UsageError("token: \(name) must be 1 to 128 printable characters", command: "token")
            }
        }
        let configuration: Configuration
        let credentials: MerchantCredentials
        do {
            (configuration, credentials) = try ConfigLoader.loadWithSecrets(path: ConfigLoader.path(explicit: options.value("config")))
        } catch {
            return .failure("invalid configuration: \(error)")
        }
        let client = WeChatPayClient(configuration: credentials.clientConfiguration(configuration))
        do {
            let token = try await client.token(outUserID: user, organizationID: organization)
            print(token)
            return .success
        } catch {
            return .failure("token: \(error)")
        }
    }
}
