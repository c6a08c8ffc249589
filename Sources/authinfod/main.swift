import FoundationEssentials
import Glibc
import SystemCalls
import WeChatPay

/// authinfod's command line (README, "Commands"). Errors are one line on stderr;
/// exit status 0 success, 1 failure, 2 usage error.
func writeError(_ line: String) {
    StandardStream.error.write("authinfod: \(line)\n")
}

func run(_ arguments: [String]) async -> Int32 {
    guard let command = arguments.first else {
        StandardStream.error.write(Usage.overview + "\n")
        return 2
    }
    let rest = Array(arguments.dropFirst())
    do throws(UsageError) {
        let result: CommandResult
        switch command {
        case "--version", "version":
            print("authinfod \(BuildInfo.version)")
            return 0
        case "--help", "-h":
            print(Usage.overview)
            return 0
        case "help":
            guard let topic = rest.first else {
                print(Usage.overview)
                return 0
            }
            guard let text = Usage.commands[topic] else { throw UsageError("help: no command \"\(topic)\"") }
            print(text)
            return 0
        case "check-config": result = try Commands.checkConfig(rest)
        case "token": result = try await Commands.token(rest)
        case "run": result = try Commands.runDaemon(rest)
        case "status": result = try Commands.status(rest)
        case "get": result = try Commands.get(rest)
        case "refresh": result = try Commands.refresh(rest)
        case "reload": result = try Commands.reload(rest)
        case "exchange": result = try Commands.exchange(rest)
        case "demo": result = try await Demo.run(rest)
        default: throw UsageError("unknown command \"\(command)\"")
        }
        switch result {
        case .success: return 0
        case .failure(let message):
            writeError(message)
            return 1
        case .exit(let status, let message):
            if let message { writeError(message) }
            return status
        }
    } catch {
        writeError(error.message + "; see 'authinfod \(error.command.map { "help \($0)" } ?? "--help")'")
        return 2
    }
}

// `run` handles SIGTERM/SIGINT itself (stop cleanly, exit 0); ignore them from the first
// instruction so a stop during start-up cannot kill the daemon half-way.
if CommandLine.arguments.dropFirst().first == "run" {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    CrashHygiene.apply()
    MemoryPolicy.apply()
}
exit(await run(Array(CommandLine.arguments.dropFirst())))
