import AuthInfoDaemon
import Foundation
import Testing
import WeChatPay

@Suite struct ConfigLoaderTests {
    /// Writes `config` to a site and loads it, returning the refusal (nil when accepted).
    func refusal(_ site: Site, _ config: [String: Any], environment: [String: String] = [:]) throws -> ConfigError? {
        try site.writeConfig(config)
        do {
            _ = try ConfigLoader.load(path: site.configPath, environment: environment)
            return nil
        } catch {
            return error
        }
    }

    func with(_ config: [String: Any], _ section: String, _ key: String, _ value: Any) -> [String: Any] {
        var config = config
        var object = config[section] as? [String: Any] ?? [:]
        object[key] = value
        config[section] = object
        return config
    }

    /// A misspelt required key is named as the unknown key it is, with the right spelling,
    /// rather than reported as the required key missing.
    @Test(arguments: [("devices", "devics"), ("merchant", "marchant"), ("device_id", "deviceid"), ("mchid", "mch_id")])
    func aMisspeltRequiredKeyIsNamedAsUnknownWithTheSpellingToUse(right: String, wrong: String) throws {
        let site = try Site()
        var config = site.config(devices: 1)
        switch right {
        case "devices", "merchant":
            config[wrong] = config.removeValue(forKey: right)
        case "device_id":
            config["devices"] = [["deviceid": "dev-0001", "raw_data": "R"]]
        default:
            var merchant = site.merchant()
            merchant[wrong] = merchant.removeValue(forKey: right)
            config["merchant"] = merchant
        }
        let error = try #require(try refusal(site, config))
        #expect(error.description.contains("\(wrong)") && error.description.contains("unknown key (did you mean \"\(right)\"?)"), "\(error)")
        #expect(!error.description.contains("is required"), "\(error)")
    }

    @Test func aMinimalConfigGetsTheContractDefaults() throws {
        let site = try Site()
        try site.writeConfig(["merchant": site.merchant(), "devices": [["device_id": "dev-0001", "raw_data": "R", "sp_appid": "wx1", "sub_mchid": "1", "organization_id": "o"]]])
        let config = try ConfigLoader.load(path: site.configPath, environment: [:])
        #expect(config.api.baseURL.absoluteString == "https://api.mch.weixin.qq.com")
        #expect(config.api.backupBaseURL?.absoluteString == "https://api2.mch.weixin.qq.com")
        #expect(config.api.timeout == 10)
        #expect(config.refresh == Configuration.Refresh())
        #expect(config.refresh.interval == 2400 && config.refresh.authInfoTTL == 3600 && config.refresh.maximumConcurrentRequests == 4)
        #expect(config.storage.database == "/var/lib/authinfod/authinfo.db")
        #expect(config.storage.publishDirectory == "/run/authinfod/devices")
        #expect(config.listen.unixSocket == "/run/authinfod/authinfod.sock" && config.listen.unixSocketMode == 0o660)
        #expect(config.listen.tcp == nil)
        #expect(config.log.level == .info && config.log.summaryInterval == 300)
        #expect(config.merchant.privateKeyFile == site.directory.file("apiclient_key.pem"))
    }

    @Test func deviceDefaultsAreOverlaidAndRelativePathsResolveAgainstTheConfigFolder() throws {
        let site = try Site()
        var config = site.config()
        config["devices"] = [["device_id": "a", "raw_data": "R"], ["device_id": "b", "raw_data_file": "raw/b.txt", "sub_mchid": "42", "sub_appid": "wxsub"]]
        try site.writeConfig(config)
        let loaded = try ConfigLoader.load(path: site.configPath, environment: [:])
        #expect(loaded.devices[0].subMchID == "1900000999" && loaded.devices[0].subAppID == nil)
        #expect(loaded.devices[1].subMchID == "42" && loaded.devices[1].subAppID == "wxsub")
        #expect(loaded.devices[1].rawData == .file(site.directory.file("raw/b.txt")))
        #expect(loaded.storage.database == site.directory.file("state/authinfo.db"))
    }

    @Test func keyFilesAreLookedUpInTheCredentialsDirectoryFirst() throws {
        let site = try Site()
        let credentials = try TemporaryDirectory()
        try credentials.write("apiclient_key.pem", TestKeys.merchantPEM)
        try site.writeConfig(site.config())
        let loaded = try ConfigLoader.load(path: site.configPath, environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        #expect(loaded.merchant.privateKeyFile == credentials.file("apiclient_key.pem"))
        #expect(loaded.merchant.publicKeyFile == site.directory.file("pub_key.pem"), "falls back beside the config")
    }

    @Test(arguments: [
        ("refresh", "intervl_seconds", "10", "refresh.intervl_seconds", "did you mean \"interval_seconds\""),
        ("api", "timeout_seconds", #""10""#, "api.timeout_seconds", "expected a number, found a string"),
        ("api", "timeout_seconds", "0", "api.timeout_seconds", "greater than 0"),
        ("refresh", "backoff_max_seconds", "-5", "refresh.backoff_max_seconds", "greater than 0"),
        ("refresh", "max_concurrent_requests", "1.5", "refresh.max_concurrent_requests", "whole number"),
        ("refresh", "interval_seconds", "3600", "refresh.interval_seconds", "below authinfo_ttl_seconds"),
        // Below the lifetime, but the jitter (0.1 by default) could put a refresh at 3,740 s.
        ("refresh", "interval_seconds", "3400", "refresh.interval_seconds", "past authinfo_ttl_seconds (3600): the value would expire first"),
        ("refresh", "jitter_fraction", "0.6", "refresh.jitter_fraction", "between 0 and 0.5"),
        ("refresh", "jitter_fraction", "-0.1", "refresh.jitter_fraction", "between 0 and 0.5"),
        ("refresh", "backoff_min_seconds", "400", "refresh.backoff_min_seconds", "must not be above backoff_max_seconds"),
        ("api", "base_url", #""http://api.mch.weixin.qq.com""#, "api.base_url", "plain http"),
        ("api", "base_url", #""ftp://x""#, "api.base_url", "https"),
        ("api", "backup_base_url", #""http://10.0.0.1""#, "api.backup_base_url", "plain http"),
        // Not addresses at all (08 and 09 are not octal digits): the resolver would ask DNS.
        ("api", "base_url", #""http://127.0.0.09""#, "api.base_url", "plain http"),
        ("api", "base_url", #""http://127.0.0.1.example.com""#, "api.base_url", "plain http"),
        ("api", "base_url", #""http://[::2]""#, "api.base_url", "plain http"),
        ("log", "level", #""verbose""#, "log.level", "debug, info, warning, error"),
        ("listen", "unix_socket_mode", #""0666""#, "listen.unix_socket_mode", "every local user"),
        ("listen", "tcp", #""0.0.0.0""#, "listen.tcp", "host:port"),
        ("storage", "databse", #""x""#, "storage.databse", "unknown key"),
    ])
    func refusalsNameTheKey(section: String, key: String, json: String, expectedKey: String, expectedText: String) throws {
        let site = try Site()
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        let error = try refusal(site, with(site.config(), section, key, value))
        #expect(error?.key == expectedKey)
        #expect(error?.message.contains(expectedText) == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix(site.configPath) == true)
    }

    @Test func httpToLoopbackIsAllowedForTheSimulator() throws {
        let site = try Site()
        for url in ["http://127.0.0.1:9", "http://127.3.4.5:9", "http://localhost:9", "http://LOCALHOST:9", "http://[::1]:9", "http://[0:0:0:0:0:0:0:1]:9",
                    "https://example.com"] {
            #expect(try refusal(site, with(site.config(), "api", "base_url", url)) == nil, "\(url)")
        }
    }

    @Test(arguments: ["", "-dev", ".x", "dev/1", "dev 1", "dév", String(repeating: "a", count: 65), "../etc"])
    func badDeviceIDsAreRefused(id: String) throws {
        let site = try Site()
        var config = site.config()
        config["devices"] = [["device_id": id, "raw_data": "R"]]
        let error = try refusal(site, config)
        #expect(error?.key == "devices[0].device_id")
    }

    @Test func longestValidDeviceIDIsAccepted() throws {
        let site = try Site()
        var config = site.config()
        config["devices"] = [["device_id": "A" + String(repeating: "b.-_", count: 15) + "zzz", "raw_data": "R"]]
        #expect(try refusal(site, config) == nil)
    }

    @Test func duplicateDeviceIDsAreRefused() throws {
        let site = try Site()
        var config = site.config()
        config["devices"] = [["device_id": "d1", "raw_data": "R"], ["device_id": "d1", "raw_data": "S"]]
        let error = try refusal(site, config)
        #expect(error?.key == "devices[1].device_id")
        #expect(error?.message.contains("duplicate") == true)
    }

    @Test func devicesNeedTheirFieldsAndExactlyOneRawDataSource() throws {
        let site = try Site()
        var config = site.config()
        config["device_defaults"] = nil
        config["devices"] = [["device_id": "d1", "raw_data": "R"]]
        #expect(try refusal(site, config)?.key == "devices[0].sp_appid")
        config = site.config()
        config["devices"] = [["device_id": "d1"]]
        #expect(try refusal(site, config)?.key == "devices[0].raw_data")
        config["devices"] = [["device_id": "d1", "raw_data": "R", "raw_data_file": "f"]]
        #expect(try refusal(site, config)?.message.contains("exactly one") == true)
        config["devices"] = [["device_id": "d1", "raw_data": "R", "colour": "red"]]
        #expect(try refusal(site, config)?.key == "devices[0].colour")
    }

    /// Each field comes from the device, else from `device_defaults`; a field neither sets is
    /// named with the device's index, and so is an element that is not an object.
    @Test func eachDeviceFieldFallsBackToItsDefaultAndAMissingOneIsNamed() throws {
        let site = try Site()
        var config = site.config()
        config["device_defaults"] = ["sp_appid": "wxdefault", "sub_mchid": "100", "organization_id": "org-d", "sub_appid": "wxsubd"]
        config["devices"] = [["device_id": "d1", "raw_data": "R"],
                             ["device_id": "d2", "raw_data": "R", "sp_appid": "wxown", "sub_mchid": "200", "organization_id": "org-2", "sub_appid": "wxsub2"]]
        let loaded = try ConfigLoader.parse(Array(try JSONSerialization.data(withJSONObject: config)), file: site.configPath)
        #expect(loaded.devices.map(\.spAppID) == ["wxdefault", "wxown"])
        #expect(loaded.devices.map(\.subMchID) == ["100", "200"])
        #expect(loaded.devices.map(\.organizationID) == ["org-d", "org-2"])
        #expect(loaded.devices.map(\.subAppID) == ["wxsubd", "wxsub2"])
        for field in ["sp_appid", "sub_mchid", "organization_id"] {
            var defaults = config["device_defaults"] as! [String: Any]
            defaults[field] = nil
            var missing = config
            missing["device_defaults"] = defaults
            let error = try refusal(site, missing)
            #expect(error?.key == "devices[0].\(field)")
            #expect(error?.message.contains("required for device d1") == true)
        }
        config["devices"] = [["device_id": "d1", "raw_data": "R"], ["device_id": "d2", "raw_data": "R"], "d3"]
        let error = try refusal(site, config)
        #expect(error?.key == "devices[2]")
        #expect(error?.message.contains("expected an object") == true)
    }

    @Test func privateKeyReadableByOthersIsRefused() throws {
        let site = try Site()
        chmod(site.directory.file("apiclient_key.pem"), 0o644)
        let error = try refusal(site, site.config())
        #expect(error?.key == "merchant.private_key_file")
        #expect(error?.message.contains("chmod 600") == true)
    }

    @Test func missingKeyFileIsRefused() throws {
        let site = try Site()
        try FileManager.default.removeItem(atPath: site.directory.file("pub_key.pem"))
        let error = try refusal(site, site.config())
        #expect(error?.key == "merchant.wechatpay_public_key_file")
        #expect(error?.message.contains("does not exist") == true)
    }

    @Test func keyPathThatIsADirectoryIsRefused() throws {
        let site = try Site()
        try FileManager.default.removeItem(atPath: site.directory.file("apiclient_key.pem"))
        try FileManager.default.createDirectory(atPath: site.directory.file("apiclient_key.pem"), withIntermediateDirectories: false)
        #expect(try refusal(site, site.config())?.message.contains("not a regular file") == true)
    }

    @Test func wrongPEMInAKeyFileIsRefused() throws {
        let site = try Site()
        try site.directory.write("apiclient_key.pem", try TestKeys.gateway.publicKeyPEM())
        #expect(try refusal(site, site.config())?.key == "merchant.private_key_file")
        let other = try Site()
        try other.directory.write("pub_key.pem", TestKeys.merchantPEM, mode: 0o644)
        let error = try refusal(other, other.config())
        #expect(error?.key == "merchant.wechatpay_public_key_file")
        #expect(error?.message.contains("BEGIN PUBLIC KEY") == true)
    }

    @Test func apiV3KeyMustBeThirtyTwoCharacters() throws {
        let site = try Site()
        try site.directory.write("apiv3.key", "short\n")
        var config = site.config()
        config["merchant"] = site.merchant(mode: .platformCertificate)
        let error = try refusal(site, config)
        #expect(error?.key == "merchant.apiv3_key_file")
        #expect(error?.message.contains("32-character") == true)
    }

    @Test func aVerificationKeyIsRequired() throws {
        let site = try Site()
        var config = site.config()
        config["merchant"] = ["mchid": Site.mchid, "serial_no": Site.serial, "private_key_file": "apiclient_key.pem"]
        let error = try refusal(site, config)
        #expect(error?.key == "merchant")
        #expect(error?.message.contains("cannot be verified") == true)
    }

    @Test func malformedJSONAndDuplicateKeysAreRefusedWithAPosition() throws {
        let site = try Site()
        try site.directory.write("authinfod.json", "{\"merchant\": {}, \"merchant\": {}}", mode: 0o640)
        do {
            _ = try ConfigLoader.load(path: site.configPath, environment: [:])
            Issue.record("duplicate key accepted")
        } catch {
            #expect(error.message.contains("duplicate key \"merchant\""))
            #expect(error.message.contains("line 1"))
        }
        try site.directory.write("authinfod.json", "{\"merchant\": {},\n}", mode: 0o640)
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: site.configPath, environment: [:]) }
    }

    @Test func tcpClientsMustNameConfiguredDevicesAndCarryAStrongToken() throws {
        let site = try Site()
        var listen: [String: Any] = ["tcp": "127.0.0.1:0", "tcp_clients": [["name": "k", "token": "short", "devices": ["dev-0001"]]]]
        #expect(try refusal(site, with(site.config(), "listen", "tcp_clients", listen["tcp_clients"]!))?.key == "listen.tcp_clients[0].token")
        listen["tcp_clients"] = [["name": "k", "token": String(repeating: "t", count: 20), "devices": ["dev-9999"]]]
        #expect(try refusal(site, with(site.config(), "listen", "tcp_clients", listen["tcp_clients"]!))?.key == "listen.tcp_clients[0].devices[0]")
        try site.directory.write("kiosk.token", String(repeating: "k", count: 32), mode: 0o644)
        listen["tcp_clients"] = [["name": "k", "token_file": "kiosk.token", "devices": ["dev-0001"]]]
        #expect(try refusal(site, with(site.config(), "listen", "tcp_clients", listen["tcp_clients"]!))?.key == "listen.tcp_clients[0].token_file")
    }

    /// A token written into the config makes the config a secret: check-config (and the daemon)
    /// refuse it while the group or others can read the file, naming the key; a token file that
    /// others can read is refused too.
    @Test func secretsInReadableFilesAreRefusedNamingTheKey() throws {
        let site = try Site()
        let clients: [[String: Any]] = [["name": "k", "token": String(repeating: "t", count: 24), "devices": ["dev-0001"]]]
        try site.writeConfig(with(with(site.config(), "listen", "tcp", "127.0.0.1:8787"), "listen", "tcp_clients", clients))
        for mode: mode_t in [0o644, 0o640] {
            chmod(site.configPath, mode)
            let refused = try Binary.run(["check-config", "--config", site.configPath])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("listen.tcp_clients[0].token") && refused.stderr.contains("mode 0\(String(mode, radix: 8))"), "\(refused.stderr)")
            #expect(!refused.stderr.contains(String(repeating: "t", count: 24)), "the token is never printed")
        }
        chmod(site.configPath, 0o600)
        #expect(try Binary.run(["check-config", "--config", site.configPath]).status == 0)

        try site.directory.write("kiosk.token", String(repeating: "k", count: 32), mode: 0o644)
        try site.writeConfig(with(with(site.config(), "listen", "tcp", "127.0.0.1:8787"), "listen", "tcp_clients",
                                  [["name": "k", "token_file": "kiosk.token", "devices": ["dev-0001"]]]))
        let file = try Binary.run(["check-config", "--config", site.configPath])
        #expect(file.status == 1 && file.stderr.contains("listen.tcp_clients[0].token_file") && file.stderr.contains("kiosk.token"), "\(file.stderr)")
    }

    /// The publish folder is tidied by the daemon, so it may not be a folder that holds anything
    /// else: the root, the config's folder (publish_dir "." beside the config) or the cache's.
    @Test(arguments: ["/", ".", "state", "./state/../"])
    func publishDirMustBeAFolderOfItsOwn(publishDir: String) throws {
        let site = try Site()
        let error = try #require(try refusal(site, with(site.config(), "storage", "publish_dir", publishDir)))
        #expect(error.key == "storage.publish_dir", "\(error)")
    }

    @Test func checkConfigSummarisesWithoutSecretsAndRefusesWithOneLine() throws {
        let site = try Site()
        try site.writeConfig(site.config(devices: 3))
        let good = try Binary.run(["check-config", "--config", site.configPath])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("devices:       3"))
        #expect(good.stdout.contains("WeChat Pay public key"))
        #expect(!good.stdout.contains("RAW-1"), "raw_data is never printed")
        try site.writeConfig(with(site.config(), "refresh", "jitter_fraction", 0.9))
        let bad = try Binary.run(["check-config", "--config", site.configPath])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("refresh.jitter_fraction"))
        #expect(bad.stderr.split(separator: "\n").count == 1)
    }

    /// Found by the config fuzzer: a key spelled with an escaped newline made a two-line error.
    @Test func aKeyWithControlCharactersStillGivesAOneLineError() throws {
        let site = try Site()
        var config = site.config()
        config["typo\nlevel=error event=forged"] = 1
        try site.writeConfig(config)
        let bad = try Binary.run(["check-config", "--config", site.configPath])
        #expect(bad.status == 1)
        #expect(bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
        #expect(bad.stderr.contains("typo\\u{a}level=error"))
    }
}

@Suite struct ExampleConfigTests {
    @Test func theShippedExampleConfigIsValidAndUsesTheContractDefaults() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config/authinfod.json")
        let site = try Site()
        try site.directory.write("authinfod.json", try String(contentsOf: example, encoding: .utf8), mode: 0o640)
        let config = try ConfigLoader.load(path: site.configPath, environment: [:])
        #expect(config.refresh == Configuration.Refresh())
        #expect(config.storage.database == "/var/lib/authinfod/authinfo.db")
        #expect(config.storage.publishDirectory == "/run/authinfod/devices")
        #expect(config.listen.unixSocket == "/run/authinfod/authinfod.sock")
        #expect(config.devices.map(\.id) == ["till-01", "till-02"])
        #expect(config.devices[1].subMchID == "1900000888")
    }
}

@Suite struct KeylessCommandTests {
    @Test func statusNeedsNoReadableKeyButCheckConfigDoes() throws {
        let site = try Site()
        try site.writeConfig(site.config())
        try FileManager.default.removeItem(atPath: site.directory.file("apiclient_key.pem"))
        let status = try Binary.run(["status", "--config", site.configPath])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("no cache yet"))
        let check = try Binary.run(["check-config", "--config", site.configPath])
        #expect(check.status == 1)
        #expect(check.stderr.contains("merchant.private_key_file"))
    }
}

@Suite struct JSONParserTests {
    /// Strings without escapes take the one-piece path, strings with them the escaping one; both
    /// must read what Foundation reads.
    @Test(arguments: [
        #""plain ascii""#, #""中文 and ✓""#, #""""#, #""a\"quote""#, #""back\\slash""#, #""tab\tnew\nline""#,
        #""\u00e9\u4e2d\ud83d\ude00""#, #""mixed 中 \u0041 end""#, #""slash \/ ok""#,
    ])
    func stringsReadAsFoundationReadsThem(_ literal: String) throws {
        let expected = try JSONSerialization.jsonObject(with: Data(literal.utf8), options: .fragmentsAllowed) as? String
        guard case .string(let parsed) = try JSONParser.parse(Array(literal.utf8)) else {
            Issue.record("\(literal) did not parse as a string")
            return
        }
        #expect(parsed == expected)
    }

    @Test func aRawControlCharacterOrAnUnterminatedStringIsRefused() {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(Array("\"a\u{01}b\"".utf8)) }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(Array("\"abc".utf8)) }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(Array("\"ab\\".utf8)) }
    }

    /// Small objects are checked for duplicate keys by a scan, large ones by a set: a duplicate
    /// is refused, at its own position, on either side of the switch and across it.
    @Test(arguments: [2, 15, 16, 17, 40])
    func duplicateKeysAreRefusedInObjectsOfEverySize(keys: Int) throws {
        let members = (0..<keys).map { "\"k\($0)\": \($0)" }
        guard case .object(let parsed) = try JSONParser.parse(Array("{\(members.joined(separator: ", "))}".utf8)) else {
            Issue.record("\(keys) distinct keys did not parse as an object")
            return
        }
        #expect(parsed.map(\.key) == (0..<keys).map { "k\($0)" })
        for repeated in [0, keys / 2, keys - 1] {
            let text = "{\(members.joined(separator: ", ")), \"k\(repeated)\": 0}"
            do {
                _ = try JSONParser.parse(Array(text.utf8))
                Issue.record("duplicate k\(repeated) accepted in an object of \(keys + 1) keys")
            } catch {
                #expect(error.reason == "duplicate key \"k\(repeated)\"")
                #expect(error.column == text.utf8.count - "\"k\(repeated)\": 0}".utf8.count + 1)
            }
        }
    }
}
