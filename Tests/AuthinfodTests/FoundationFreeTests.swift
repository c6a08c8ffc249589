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

    @Test func directoriesAreMadeWithTheirParentsAndAFileInTheWayIsNamed() throws {
        let root = NSTemporaryDirectory() + "authinfod-dirs-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Directories.create(root + "/a/b/c", mode: 0o750)
        try Directories.create(root + "/a/b/c", mode: 0o750)
        var status = stat()
        #expect(stat(root + "/a/b/c", &status) == 0 && status.st_mode & 0o777 == 0o750 & ~currentUmask())
        #expect(FileManager.default.createFile(atPath: root + "/file", contents: Data()))
        #expect(throws: SystemError(call: "mkdir \(root)/file", errno: ENOTDIR)) { try Directories.create(root + "/file/x", mode: 0o750) }
    }

    private func currentUmask() -> mode_t {
        let mask = umask(0o022)
        umask(mask)
        return mask
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
