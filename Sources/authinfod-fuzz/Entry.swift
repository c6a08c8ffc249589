import Foundation

#if FUZZING
import CLinux

/// The `make fuzz` build (`-sanitize=fuzzer`): hands the command line to libFuzzer's driver,
/// which feeds inputs to the target named by `AUTHINFOD_FUZZ_TARGET`.
@main
struct Fuzz {
    /// Read once: the driver's callback cannot capture, and the environment is not re-read per input.
    static let target = FuzzTarget(rawValue: ProcessInfo.processInfo.environment["AUTHINFOD_FUZZ_TARGET"] ?? "")

    static func main() {
        guard target != nil else {
            FileHandle.standardError.write(Data("authinfod-fuzz: set AUTHINFOD_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue))\n".utf8))
            exit(2)
        }
        var argc = CommandLine.argc
        var argv = Optional(CommandLine.unsafeArgv)
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            Fuzz.target!.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
    }
}
#else
/// Without libFuzzer: `authinfod-fuzz TARGET PATH...` replays every file under each PATH
/// through the target (the corpus check in `make test`) and prints how many it ran.
@main
struct Replay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count > 1 else {
            FileHandle.standardError.write(Data("usage: authinfod-fuzz (\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))) FILE_OR_DIR...\n".utf8))
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("authinfod-fuzz: \(path): no such file or folder\n".utf8))
                exit(1)
            }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target.run(Array(data))
                count += 1
            }
        }
        print("replayed \(count) \(target.rawValue) inputs")
    }
}
#endif
