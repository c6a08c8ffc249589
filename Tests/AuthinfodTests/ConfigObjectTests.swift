@testable import AuthInfoDaemon
import Testing
import WeChatPay

/// `ConfigObject` keeps which keys were read by position: a bit each for the first 64 members,
/// a list beyond. Both sides of that line must name exactly the keys nobody read.
@Suite struct ConfigObjectTests {
    /// An object with `count` members `k0` … `k{count-1}`, every third one an explicit null.
    static func object(_ count: Int) throws -> ConfigObject {
        let members = (0..<count).map { (key: "k\($0)", value: $0 % 3 == 0 ? JSONValue.null : .string("v\($0)")) }
        return try ConfigObject(file: "test.json", path: "wide", value: .object(members))
    }

    @Test(arguments: [0, 5, 63, 64, 65, 80, 99])
    func theOneKeyNotReadIsNamedOnEitherSideOfSixtyFour(_ skipped: Int) throws {
        var object = try Self.object(100)
        for index in 0..<100 where index != skipped {
            // Both ways of reading mark a key read, null or not.
            if index % 2 == 0 { _ = object.value("k\(index)") } else { _ = object.isNull("k\(index)") }
        }
        let error = try #require(throws: ConfigError.self) { try object.rejectUnknownKeys() }
        #expect(error.key == "wide.k\(skipped)", "\(error)")
        _ = object.value("k\(skipped)")
        #expect(throws: Never.self) { try object.rejectUnknownKeys() }
    }

    /// Nothing read past the first 64: the first member past them is the first unknown key.
    @Test func anObjectReadOnlyInItsFirstSixtyFourNamesTheSixtyFifth() throws {
        var object = try Self.object(100)
        for index in 0..<64 { _ = object.value("k\(index)") }
        let error = try #require(throws: ConfigError.self) { try object.rejectUnknownKeys() }
        #expect(error.key == "wide.k64", "\(error)")
    }

    @Test func valuesAndNullsAreFoundBeyondSixtyFour() throws {
        var object = try Self.object(100)
        let found = object.value("k70"), null = object.value("k72"), isNull = object.isNull("k72"), notNull = object.isNull("k71")
        let absent = object.value("k100"), absentIsNull = object.isNull("k100")
        #expect(found == .string("v70"))
        #expect(null == nil && isNull, "an explicit null reads as absent, and as null")
        #expect(!notNull)
        #expect(absent == nil && !absentIsNull, "absent")
    }

    /// A missing key's typo is looked for among the keys nobody read, on both sides of 64.
    @Test func aMissingKeyPointsToAnUnreadTypoBeyondSixtyFour() throws {
        var members = (0..<70).map { (key: "k\($0)", value: JSONValue.string("v")) }
        members.append((key: "devics", value: .array([])))
        var object = try ConfigObject(file: "test.json", path: "", value: .object(members))
        for index in 0..<70 { _ = object.value("k\(index)") }
        let devices = object.value("devices")
        #expect(devices == nil)
        let error = object.missing("devices")
        #expect(error.key == "devics" && error.message.contains("did you mean \"devices\""), "\(error)")
    }
}
