import AuthInfoDaemon
import Foundation
import SystemCalls
import Testing
import WeChatPay

/// The daemon links FoundationEssentials only (issue 16: footprint). The small pieces that
/// replaced Foundation's are checked here against Foundation itself, which tests may use.
@Suite struct FoundationFreeTests {
    @Test func theDaemonBinaryLinksNoFoundationNorICU() throws {
        // What ldd does: the dynamic loader lists the libraries it would load, and exits.
        let result = try Binary.run(["version"], environment: ["LD_TRACE_LOADED_OBJECTS": "1"])
        #expect(result.stdout.contains("libFoundationEssentials") || !result.stdout.contains("libswiftCore"),
                "expected a dynamically linked debug build: \(result.stdout)")
        for library in ["libFoundation.so", "libFoundationInternationalization", "lib_FoundationICU", "libFoundationNetworking", "libFoundationXML"] {
            #expect(!result.stdout.contains(library), "authinfod loads \(library):\n\(result.stdout)")
        }
    }

    @Test(arguments: ["/var/lib/authinfod/cache.db", "cache.db", "/x", "/", "a/b/", "/etc//authinfod/./x/../config.json",
                      "../up/../../twice", "./a/./b/..", "/../x", "a//b///c", "x/..", "/a/b/../../.."])
    func pathsMatchNSString(_ path: String) {
        if path != "/" { #expect(PathText.directory(of: path) == (path as NSString).deletingLastPathComponent.nonEmpty("."), "\(path)") }
        // NSString leaves `..` in relative paths alone; the daemon only normalises absolute ones.
        if path.hasPrefix("/") { #expect(PathText.normalized(path) == (path as NSString).standardizingPath, "\(path)") }
        #expect(PathText.resolve(path, from: "/etc/authinfod") == (path.hasPrefix("/") ? path : "/etc/authinfod/" + path))
    }

    @Test func relativePathsAreNormalisedLexically() {
        #expect(PathText.normalized("../up/../../twice") == "../../twice")
        #expect(PathText.normalized("./a/./b/..") == "a")
        #expect(PathText.normalized("x/..") == ".")
    }

    @Test func canonicalPathsFollowSymlinksAsTheKernelDoes() throws {
        let root = try #require(realpath(NSTemporaryDirectory() + ".", nil).map { String(cString: $0) }) + "/authinfod-paths-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/real/sub", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: "real")
        try FileManager.default.createSymbolicLink(atPath: root + "/abs", withDestinationPath: root + "/real/sub")
        try FileManager.default.createSymbolicLink(atPath: root + "/loop", withDestinationPath: "loop")
        let cases = [
            (root + "/link/sub", root + "/real/sub"),
            (root + "/link/../x", root + "/x"),
            (root + "/abs/../y", root + "/real/y"),
            (root + "/abs/./z//w", root + "/real/sub/z/w"),
            (root + "/missing/../z", root + "/z"),
            (root + "/real/sub/", root + "/real/sub"),
        ]
        for (path, expected) in cases {
            #expect(PathText.canonical(path) == expected, "\(path)")
            // standardized: links resolved where a `..` needs them, as NSString did.
            if path.contains("/..") { #expect(PathText.standardized(path) == (path as NSString).standardizingPath, "\(path): as NSString had it") }
        }
        #expect(PathText.standardized(root + "/link/sub") == root + "/link/sub", "a link without .. is kept")
        #expect(PathText.canonical(root + "/loop/x").hasPrefix(root), "a link loop ends")
        #expect(PathText.canonical("relative/../x") == "x")
    }

    @Test func aPublishFolderThatIsTheConfigFolderThroughALinkIsRefused() throws {
        let site = try Site()
        try FileManager.default.createSymbolicLink(atPath: site.directory.file("devices-link"), withDestinationPath: ".")
        var config = site.fastConfig(devices: 1)
        var storage = config["storage"] as? [String: Any] ?? [:]
        storage["publish_dir"] = "devices-link"
        config["storage"] = storage
        try site.writeConfig(config)
        let result = try Binary.run(["check-config", "--config", site.configPath])
        #expect(result.status == 1 && result.stderr.contains("storage.publish_dir") && result.stderr.contains("the config's folder"), "\(result.stderr)")
    }

    @Test func exchangeRefusesStandardInputOverOneMiBInsteadOfCuttingIt() throws {
        // The size is checked before the config is read: no daemon or config is needed.
        let over = try Binary.run(["-c", "head -c 1048577 /dev/zero | tr '\\0' x | \"$0\" exchange dev-0001 --raw-data - --config /nonexistent", Binary.path],
                                  executable: "/bin/sh")
        #expect(over.status == 1 && over.stderr.contains("over 1 MiB; nothing was sent"), "\(over.stderr)")
        let fits = try Binary.run(["-c", "head -c 1048576 /dev/zero | tr '\\0' x | \"$0\" exchange dev-0001 --raw-data - --config /nonexistent", Binary.path],
                                  executable: "/bin/sh")
        #expect(fits.status == 1 && !fits.stderr.contains("over 1 MiB") && fits.stderr.contains("/nonexistent"), "read whole, then the config: \(fits.stderr)")
    }

    @Test func httpDatesRoundTripAndMatchDateFormatter() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        for seconds in [0, 784_111_777, 951_782_400, 1_796_300_118, 4_102_444_799] {
            let text = HTTPDateText.format(seconds)
            #expect(text == formatter.string(from: Date(timeIntervalSince1970: Double(seconds))))
            #expect(HTTPDateText.parse(text) == seconds)
        }
        #expect(HTTPDateText.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        // A leap second stays in its day.
        #expect(HTTPDateText.parse("Wed, 31 Dec 2025 23:59:60 GMT") == 1_767_225_599)
        for bad in ["", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 31 Feb 2026 08:49:37 GMT", "Sun, 06 Nov 1994 24:49:37 GMT",
                    "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 6 Nov 1994 08:49:37 GMT",
                    "Sun, 06 Nov 1994 08:49:37 GMT ", "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT"] {
            #expect(HTTPDateText.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func cFormatMatchesStringFormat() {
        #expect(CFormat.string("%.3f", 1.23456) == String(format: "%.3f", 1.23456))
        #expect(CFormat.string("%.3f", -0.0005) == String(format: "%.3f", -0.0005))
        #expect(CFormat.string("%dh%02dm", 3, 7) == "3h07m")
        #expect(CFormat.string("dev-%04d", 42) == "dev-0042")
        let long = CFormat.string("%.3f", 1e80)
        #expect(long == String(format: "%.3f", 1e80) && long.count > 64)
    }

    @Test func whitespaceTrimmingMatchesFoundationForWhatDevicesSend() {
        for text in ["", " ", "\r\n", " raw \n", "\tA B\t", "x", "\r\nvalue\r\n", "  中文 ", "a\u{00A0}"] {
            #expect(text.trimmingWhitespace() == text.trimmingCharacters(in: CharacterSet(charactersIn: " \t\r\n")), "\(text.debugDescription)")
        }
    }

    @Test func jsonValuesWriteAsJSONSerializationReadsThem() throws {
        let text = #"{"b":[1,2.5,-3e2,true,null,"\u0001\"\\/中"],"a":{"z":"","y":12345678901}}"#
        let value = try JSONParser.parse(Array(text.utf8))
        let written = value.text(sortedKeys: true)
        #expect(written == #"{"a":{"y":12345678901,"z":""},"b":[1,2.5,-300,true,null,"\u0001\"\\/中"]}"#)
        let reread = try JSONSerialization.jsonObject(with: Data(written.utf8)) as? NSDictionary
        let original = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary
        #expect(reread == original)
        #expect(try JSONParser.parse(Array(written.utf8)) == JSONParser.parse(Array(value.text(sortedKeys: false).utf8)).sortedForTest())
    }

    @Test func hexMatchesStringFormatForArraysSlicesAndOtherSequences() {
        let bytes: [UInt8] = Array(0...255) + [0xAB, 0x00, 0xFF]
        let expected = bytes.map { String(format: "%02x", $0) }.joined()
        #expect(Hex.lowercase(bytes) == expected)
        #expect(Hex.uppercase(bytes) == expected.uppercased())
        #expect(Hex.lowercase(bytes[3..<10]) == String(expected.dropFirst(6).prefix(14)))
        #expect(Hex.lowercase(bytes.lazy.map { $0 }) == expected, "a sequence without contiguous storage")
        #expect(Hex.lowercase([UInt8]()) == "")
    }

    @Test(arguments: [0, 1, 4095, 4096, 4097, 100_000])
    func readAllReadsFilesOfEverySizeUpToItsLimit(size: Int) throws {
        let directory = try TemporaryDirectory()
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let path = directory.file("f")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        #expect(try FileDescriptor.open(path, O_RDONLY).readAll(limit: 1 << 20) == bytes)
        #expect(try FileDescriptor.open(path, O_RDONLY).readAll(limit: 5000) == Array(bytes.prefix(5000)))
        // The expected size is a hint: too small, exact, one more, far too large.
        for expected in [0, 1, size, size + 1, 3 * size + 7] {
            #expect(try FileDescriptor.open(path, O_RDONLY).readAll(limit: 1 << 20, expected: expected) == bytes)
            #expect(try FileDescriptor.open(path, O_RDONLY).readAll(limit: 5000, expected: expected) == Array(bytes.prefix(5000)))
        }
    }

    @Test func directoriesAreMadeWithTheirParentsAndAFileInTheWayIsNamed() throws {
        let root = NSTemporaryDirectory() + "authinfod-dirs-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Exactly the mode asked for, whatever the umask (a shell's 077 made the publish folder
        // 0700 before, unreadable to the devices' group).
        let previous = umask(0o077)
        defer { umask(previous) }
        try Directories.create(root + "/a/b/c", mode: 0o750)
        try Directories.create(root + "/a/b/c", mode: 0o750)
        for folder in ["/a", "/a/b", "/a/b/c"] {
            var status = stat()
            #expect(stat(root + folder, &status) == 0 && status.st_mode & 0o777 == 0o750, "\(folder): \(String(status.st_mode & 0o777, radix: 8))")
        }
        #expect(FileManager.default.createFile(atPath: root + "/file", contents: Data()))
        #expect(throws: SystemError(call: "mkdir \(root)/file", errno: ENOTDIR)) { try Directories.create(root + "/file/x", mode: 0o750) }
    }

}

private extension String {
    func nonEmpty(_ fallback: String) -> String { isEmpty ? fallback : self }
}

private extension JSONValue {
    /// The value with every object's members sorted by key, to compare two writings.
    func sortedForTest() -> JSONValue {
        switch self {
        case .object(let members): .object(members.sorted { $0.key < $1.key }.map { ($0.key, $0.value.sortedForTest()) })
        case .array(let elements): .array(elements.map { $0.sortedForTest() })
        default: self
        }
    }
}
