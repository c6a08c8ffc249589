import Foundation
import Testing

/// `publish-floor` (Sources/authinfod-bench/publish-floor.c), the C floor `make bench` holds the
/// daemon's 100,000-device restart to READY against: it must write every file whole, the way
/// the contract asks (mode 0640, by temporary file and rename), and leave nothing else behind.
@Suite(.serialized)
struct PublishFloorTests {
    /// The program, built once for the suite into `.build` as `make bench` builds it.
    static let binary = CFloor.build("publish-floor", flags: ["-pthread"])

    @Test func writesEveryFileWholeWithMode0640AndNothingElse() throws {
        let directory = try TemporaryDirectory()
        // Under a umask that would take the group's read away, the floor sets the mode, as the
        // daemon does, or it would skip work the daemon does; under the service's, it need not.
        for mask: mode_t in [0o077, 0o027] {
            let folder = directory.file("published-\(String(mask, radix: 8))")
            let previous = umask(mask)
            let result = try Binary.run([folder, "300", "3"], executable: try Self.binary.get())
            umask(previous)
            #expect(result.status == 0, "\(result.stderr)")
            let figures = result.stdout.split(whereSeparator: \.isWhitespace).compactMap(Double.init)
            #expect(figures.count == 3 && figures[0] > 0 && figures[2] >= 0 && figures[2] <= figures[1], "wall, CPU, kernel: \(result.stdout)")
            let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
            #expect(names == (1...300).map { String(format: "dev-%06d.json", $0) }, "300 documents and no temporary file left")
            for number in [1, 150, 300] {
                let path = folder + String(format: "/dev-%06d.json", number)
                let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
                #expect(mode == 0o640, "\(path): \(String(mode, radix: 8))")
                let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
                #expect(document?["device_id"] as? String == String(format: "dev-%06d", number))
                #expect((document?["expires_at"] as? Int ?? 0) > (document?["fetched_at"] as? Int ?? .max))
            }
        }
    }

    @Test func refusesAFolderThatExistsAndBadCounts() throws {
        let directory = try TemporaryDirectory()
        let existing = try Binary.run([directory.path, "10", "1"], executable: try Self.binary.get())
        #expect(existing.status == 1 && existing.stderr.contains("must not exist yet"), "\(existing.stderr)")
        #expect(existing.stderr.contains("File exists"), "the system's reason: \(existing.stderr)")
        let noFiles = try Binary.run([directory.file("new"), "0", "1"], executable: try Self.binary.get())
        #expect(noFiles.status == 1 && noFiles.stderr.contains("bad COUNT"), "\(noFiles.stderr)")
        let tooManyThreads = try Binary.run([directory.file("new"), "10", "65"], executable: try Self.binary.get())
        #expect(tooManyThreads.status == 1 && tooManyThreads.stderr.contains("bad THREADS (from 1 to 64): 65"), "\(tooManyThreads.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("new")), "nothing made for a refused run")
    }
}
