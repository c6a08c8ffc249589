import Foundation

/// The bench's C floors (`Sources/authinfod-bench/NAME.c`), built for their tests with the flags
/// `make bench` uses, by `cc` or else the Swift toolchain's `clang`: a floor is only fair if it
/// does all the work it claims, so its tests run the program itself.
enum CFloor {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct BuildFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// `.build/NAME-test`, built from `NAME.c` with `flags` after the source (libraries).
    static func build(_ name: String, flags: [String]) -> Result<String, BuildFailure> {
        let source = root.appendingPathComponent("Sources/authinfod-bench/\(name).c").path
        let output = root.appendingPathComponent(".build/\(name)-test").path
        var errors: [String] = []
        for compiler in ["cc", "clang"] {
            guard let result = try? Binary.run([compiler, "-O2", "-Wall", "-o", output, source] + flags, executable: "/usr/bin/env") else { continue }
            if result.status == 0 { return .success(output) }
            errors.append("\(compiler): \(result.stderr.suffix(600))")
        }
        return .failure(BuildFailure(description: "neither cc nor clang could build \(name).c: \(errors.joined(separator: "; "))"))
    }
}
