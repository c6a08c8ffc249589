import Foundation
import Testing
import WeChatPay
import WeChatPaySimulator
@testable import AuthInfoDaemon

/// `refresh-floor` (Sources/authinfod-bench/refresh-floor.c), the C floor `make bench` holds the
/// daemon's CPU per refresh against: a floor is only fair if it does all the work it claims.
@Suite(.serialized)
struct RefreshFloorTests {
    /// The program, built once for the suite into `.build` as `make bench` builds it.
    static let binary = CFloor.build("refresh-floor", flags: ["-lcrypto", "-lsqlite3"])

    static func run(_ binary: String, _ site: Site, calls: Int) throws -> ProcessResult {
        try FileManager.default.createDirectory(atPath: site.directory.file("published"), withIntermediateDirectories: true)
        return try Binary.run([String(site.simulator.port), Site.mchid, Site.serial, site.directory.file("apiclient_key.pem"),
                               site.directory.file("pub_key.pem"), String(calls), "4", site.directory.path, site.directory.file("published")],
                              executable: binary)
    }

    @Test func signsEveryCallVerifiesEveryAnswerAndCommitsAndPublishesEach() throws {
        let site = try Site()
        let result = try Self.run(try Self.binary.get(), site, calls: 40)
        #expect(result.status == 0, "\(result.stderr)")
        let figures = result.stdout.split(whereSeparator: \.isWhitespace).compactMap(Double.init)
        #expect(figures.count == 2 && figures[0] > 0 && figures[1] >= 0 && figures[1] <= figures[0], "\(result.stdout)")
        // WARM_UP (200) calls, then 40 measured, each accepted by the simulator's signature check.
        let calls = site.simulator.requests(path: WeChatPayClient.authInfoPath)
        #expect(calls.count == 240)
        #expect(calls.allSatisfy { $0.status == 200 })
        // Devices dev-000001 … dev-000240, one call each: one file each, holding the value the
        // simulator issued.
        let files = try FileManager.default.contentsOfDirectory(atPath: site.directory.file("published")).filter { $0.hasSuffix(".json") }
        #expect(files.count == 240)
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: site.directory.file("published/dev-000007.json")))) as? [String: Any]
        #expect(document?["authinfo"] as? String == site.simulator.issuedAuthInfo(deviceID: "dev-000007").last)
        let log = try String(contentsOfFile: site.directory.file("refresh-floor.log"), encoding: .utf8)
        #expect(log.split(separator: "\n").count == 240)
        let database = try SQLiteConnection(path: site.directory.file("refresh-floor.db"), readOnly: true, create: false)
        #expect(try database.scalarText("SELECT count(*) FROM devices") == "240")
        #expect(try database.scalarText("SELECT authinfo FROM devices WHERE device_id = 'dev-000007'")
                == site.simulator.issuedAuthInfo(deviceID: "dev-000007").last)
    }

    @Test func refusesAnAnswerWhoseSignatureDoesNotVerify() throws {
        let site = try Site()
        site.simulator.fault = .forgedSignature
        let result = try Self.run(try Self.binary.get(), site, calls: 10)
        #expect(result.status == 1)
        #expect(result.stderr.contains("signature does not verify"), "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }
}
