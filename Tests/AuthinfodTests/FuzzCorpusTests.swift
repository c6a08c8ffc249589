import Foundation
import Testing

/// The fuzz targets' seed corpus, with every input a fuzzer ever crashed on, replayed through the
/// same invariants `make fuzz` checks (the real `authinfod-fuzz` binary, built without libFuzzer).
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus").path

    @Test(arguments: ["http", "config", "answer", "reader"])
    func seededCorpusReplaysWithoutBreakingAnInvariant(target: String) throws {
        let folder = Self.corpus + "/" + target
        let inputs = try FileManager.default.contentsOfDirectory(atPath: folder).count
        #expect(inputs >= 5, "a real seed corpus for \(target)")
        let result = try Binary.run([target, folder], executable: Binary.sibling("authinfod-fuzz"),
                                    environment: ["SWIFT_BACKTRACE": "enable=no"])
        #expect(result.status == 0, "\(target): \(result.stderr.split(separator: "\n").prefix(3).joined(separator: " | "))")
        #expect(result.stdout.contains("replayed \(inputs) \(target) inputs"))
    }

    @Test func anUnknownTargetIsAUsageError() throws {
        let result = try Binary.run(["nonsense", Self.corpus], executable: Binary.sibling("authinfod-fuzz"))
        #expect(result.status == 2 && result.stderr.contains("usage: authinfod-fuzz"))
    }
}
