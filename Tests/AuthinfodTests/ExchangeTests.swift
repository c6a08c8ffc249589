import Foundation
import Synchronization
import Testing

/// The exchange, `POST /v1/devices/{id}/authinfo {"raw_data"}`, as a terminal's app uses it,
/// against the real daemon and the simulator's call counts.
@Suite struct ExchangeTests {
    static let path = "/v1/devices/dev-0001/authinfo"

    static func exchange(_ api: APISite, _ rawData: String, device: String = "dev-0001", token: String = APISite.kioskToken,
                         _ extra: [String] = []) throws -> (status: Int, body: String) {
        try api.tcp("/v1/devices/\(device)/authinfo", token: token, ["-X", "POST", "--data-binary", "{\"raw_data\":\"\(rawData)\"}"] + extra)
    }

    static func authinfo(_ body: String) -> String? {
        guard let data = body.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["authinfo"] as? String
    }

    @Test func newRawDataGivesANewValueAndTheSameRawDataWhileFreshCostsNoCall() throws {
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        let simulator = api.site.simulator
        let before = simulator.authInfoRequestCount(deviceID: "dev-0001")

        let first = try Self.exchange(api, "RAW-T1", ["-i"])
        #expect(first.status == 200, "\(first.body)")
        #expect(simulator.authInfoRequestCount(deviceID: "dev-0001") == before + 1)
        #expect(simulator.requests(path: "/v3/offlineface/authinfo").last?.rawData == "RAW-T1")
        let value = try #require(Self.authinfo(String(first.body.split(separator: "\r\n\r\n").last ?? "")))
        #expect(simulator.didIssue(value, to: "dev-0001") && first.body.contains("ETag: W/"))

        let again = try Self.exchange(api, "RAW-T1")
        #expect(again.status == 200 && Self.authinfo(again.body) == value, "the fresh value from the same raw_data")
        #expect(simulator.authInfoRequestCount(deviceID: "dev-0001") == before + 1, "no gateway call")

        let renewed = try Self.exchange(api, "RAW-T2")
        #expect(renewed.status == 200 && Self.authinfo(renewed.body) != value)
        #expect(simulator.requests(path: "/v3/offlineface/authinfo").last?.rawData == "RAW-T2")
        // The pushed raw_data is the device's from now on, and survives: the next refresh uses it.
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        api.daemon.wait(10, "a refresh with the exchanged raw_data") { simulator.authInfoRequestCount(deviceID: "dev-0001") == before + 3 }
        #expect(simulator.requests(path: "/v3/offlineface/authinfo").last?.rawData == "RAW-T2")

        #expect(try Self.exchange(api, "RAW-X", device: "dev-0002").status == 403, "a client writes only its devices")
        let malformed = try api.tcp(Self.path, token: APISite.kioskToken, ["-X", "POST", "--data-binary", "{\"raw\":1}"])
        #expect(malformed.status == 400 && (try? JSONSerialization.jsonObject(with: Data(malformed.body.utf8))) != nil, "a JSON error: \(malformed.body)")
        let token = try api.unix("/v1/tokens", ["-X", "POST", "--data-binary", "{}"])
        #expect(token.status == 400 && (try? JSONSerialization.jsonObject(with: Data(token.body.utf8))) != nil, "a JSON error: \(token.body)")
        #expect(!api.daemon.log.contains("RAW-T1") && !api.daemon.log.contains(value), "neither raw_data nor authinfo is logged")
    }

    @Test func twentyConcurrentExchangesForOneDeviceMakeOneGatewayCall() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let simulator = api.site.simulator
        simulator.delay(deviceID: "dev-0001", seconds: 0.5)
        let before = simulator.authInfoRequestCount(deviceID: "dev-0001")
        let answers = Mutex<[(Int, String)]>([])
        DispatchQueue.concurrentPerform(iterations: 20) { _ in
            let answer = (try? Self.exchange(api, "RAW-SAME")) ?? (0, "")
            answers.withLock { $0.append(answer) }
        }
        let all = answers.withLock { $0 }
        #expect(all.allSatisfy { $0.0 == 200 }, "\(all.map(\.0))")
        #expect(Set(all.compactMap { Self.authinfo($0.1) }).count == 1, "everyone got the one new value")
        #expect(simulator.authInfoRequestCount(deviceID: "dev-0001") == before + 1, "one gateway call for twenty exchanges")
    }

    @Test func duringAnOutageTheCachedValueComesAtOnceWithTheReason() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let simulator = api.site.simulator
        simulator.fault = .down
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        api.daemon.wait(10, "the outage") { api.daemon.log.contains("event=outage") }
        let started = Date()
        let answer = try Self.exchange(api, "RAW-DURING")
        let took = Date().timeIntervalSince(started)
        #expect(answer.status == 200 && answer.body.contains("\"refresh_error\":{\"code\":\"gateway_unavailable\""), "\(answer.body)")
        #expect(took < 0.1 + 0.05, "answered at once, not after a doomed call: \(took) s (curl's own start included)")
        #expect(Self.authinfo(answer.body).map { simulator.didIssue($0, to: "dev-0001") } == true)

        simulator.fault = .none
        api.daemon.wait(15, "the exchanged raw_data sent once the gateway is back") {
            simulator.requests(path: "/v3/offlineface/authinfo").last?.rawData == "RAW-DURING"
        }
    }

    @Test func withNoValidValueAnOutageIs503WithRetryAfter() throws {
        let site = try Site()
        site.simulator.fault = .down
        let api = try APISite(site: site, devices: 1, waitForValues: false)
        defer { _ = api.daemon.terminate() }
        api.daemon.wait(10, "the outage") { api.daemon.log.contains("event=outage") }
        let answer = try Self.exchange(api, "RAW-NONE", ["-i"])
        #expect(answer.status == 503 && answer.body.contains("\"error\":\"gateway_unavailable\""), "\(answer.body)")
        #expect(answer.body.contains("Retry-After: "))
    }

    @Test func aRefusedRawDataIs422AndNeverSentAgain() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let simulator = api.site.simulator
        simulator.rejectRawData("RAW-STALE")
        let refused = try Self.exchange(api, "RAW-STALE")
        #expect(refused.status == 422 && refused.body.contains("\"error\":\"raw_data_rejected\"") && refused.body.contains("PARAM_ERROR"), "\(refused.body)")
        let calls = simulator.authInfoRequestCount(deviceID: "dev-0001")
        #expect(try Self.exchange(api, "RAW-STALE").status == 422, "the same raw_data again: refused without a call")
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        Thread.sleep(forTimeInterval: 1)
        #expect(simulator.authInfoRequestCount(deviceID: "dev-0001") == calls)
        #expect(try api.unix(Self.path).body.contains("\"state\":\"needs_raw_data\""))
        let renewed = try Self.exchange(api, "RAW-RENEWED")
        #expect(renewed.status == 200 && renewed.body.contains("\"state\":\"fresh\""), "\(renewed.body)")
    }

    @Test func aSlowGatewayStillGetsAnAnswerWithinTheTimeoutPlusOneSecond() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        api.site.simulator.delay(deviceID: "dev-0001", seconds: 5)
        let started = Date()
        let answer = try Self.exchange(api, "RAW-SLOW")
        let took = Date().timeIntervalSince(started)
        #expect(took < 2 + 1, "api.timeout_seconds is 2: \(took) s")
        #expect(answer.status == 200 && answer.body.contains("\"refresh_error\""), "the cached value and why: \(answer.body)")
    }
}

extension ExchangeTests {
    @Test func theExchangeCommandPrintsTheDocumentOrSaysWhy() throws {
        let api = try APISite(devices: 1)
        defer { _ = api.daemon.terminate() }
        let file = try api.site.directory.write("raw.txt", "RAW-CLI\n")
        let result = try Binary.run(["exchange", "dev-0001", "--raw-data-file", file, "--config", api.site.configPath])
        #expect(result.status == 0, "\(result.stderr)")
        let value = try #require(Self.authinfo(result.stdout), "\(result.stdout)")
        #expect(api.site.simulator.didIssue(value, to: "dev-0001"))
        #expect(api.site.simulator.requests(path: "/v3/offlineface/authinfo").last?.rawData == "RAW-CLI")

        api.site.simulator.rejectRawData("RAW-OLD")
        let stale = try api.site.directory.write("stale.txt", "RAW-OLD")
        let refused = try Binary.run(["exchange", "dev-0001", "--raw-data-file", stale, "--config", api.site.configPath])
        #expect(refused.status == 1 && refused.stderr.contains("refused this raw_data") && refused.stderr.contains("generate new raw_data"), "\(refused.stderr)")
        let usage = try Binary.run(["exchange", "dev-0001", "--config", api.site.configPath])
        #expect(usage.status == 2 && usage.stderr.contains("--raw-data-file"))
    }
}

extension ExchangeTests {
    /// The curl commands of the README's "Integrating a terminal", run as written (with the
    /// variables they name set) against the real daemon over TLS.
    @Test func theREADMEsTerminalCommandsWork() throws {
        let readme = try String(contentsOfFile: UnitFileTests.root.appendingPathComponent("README.md").path, encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "### Integrating a terminal").dropFirst().first?.components(separatedBy: "\n### ").first)
        let commands = section.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("curl ") }
        #expect(commands.count == 2, "\(commands)")
        let (api, certificate) = try TLSListenerTests.site()
        defer { _ = api.daemon.terminate() }
        var environment = ["AUTHINFOD": "https://localhost:\(api.port)", "CA": certificate, "TOKEN": APISite.kioskToken,
                           "DEVICE": "dev-0001", "RAW_DATA": "RAW-FROM-THE-SDK", "PATH": "/usr/bin:/bin"]
        func run(_ command: String) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", command]
            process.environment = environment
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return text
        }
        let exchanged = try run(commands[0])
        #expect(exchanged.hasPrefix("HTTP/1.1 200") && exchanged.contains("\"authinfo\":"), "\(exchanged.prefix(300))")
        #expect(api.site.simulator.requests(path: "/v3/offlineface/authinfo").last?.rawData == "RAW-FROM-THE-SDK")
        let etag: String = try #require(LongPollTests.etag(exchanged))
        environment["ETAG"] = etag

        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { _ = try? api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]) }
        let started = Date()
        let next = try run(commands[1])
        #expect(next.hasPrefix("HTTP/1.1 200") && LongPollTests.etag(next) != environment["ETAG"], "\(next.prefix(300))")
        #expect(Date().timeIntervalSince(started) < 5, "answered on the refresh, not at the end of the wait")
    }
}
