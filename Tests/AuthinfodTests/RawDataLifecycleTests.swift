import Foundation
import Testing

/// raw_data the gateway refuses, or that grew too old: the device needs new raw_data, makes no
/// gateway call until it comes, keeps serving its valid value, and says so everywhere.
@Suite struct RawDataLifecycleTests {
    @Test func aRefusedRawDataStopsCallsUntilNewRawDataArrivesAndSurvivesARestart() throws {
        let api = try APISite(devices: 2)
        defer { _ = api.daemon.terminate() }
        let simulator = api.site.simulator
        // dev-0001 has a value; now its raw_data goes stale at the gateway.
        simulator.rejectRawData("RAW-1")
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        api.daemon.wait(10, "needs_raw_data") { api.daemon.log.contains("event=needs_raw_data device=dev-0001") }
        let line = api.daemon.log.split(separator: "\n").first { $0.contains("event=needs_raw_data") } ?? ""
        #expect(line.contains("code=PARAM_ERROR") && line.contains("http_status=400"), "\(line)")
        #expect(!api.daemon.log.contains("RAW-1"), "raw_data is never logged")

        let served = try api.tcp("/v1/devices/dev-0001/authinfo", token: APISite.kioskToken)
        #expect(served.status == 200 && served.body.contains("\"state\":\"needs_raw_data\""), "the valid value stays served, and says so: \(served.body)")
        let status = try api.unix("/v1/status").body
        #expect(status.contains("\"needs_raw_data\":1"), "\(status.prefix(200))")
        #expect(try api.unix("/metrics").body.contains("authinfod_devices{state=\"needs_raw_data\"} 1"))

        // No call for it while nothing new comes, whatever asks for a refresh.
        let calls = simulator.authInfoRequestCount(deviceID: "dev-0001")
        #expect(try api.unix("/v1/devices/dev-0001/refresh", ["-X", "POST"]).status == 202)
        kill(api.daemon.process.processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 2)
        #expect(simulator.authInfoRequestCount(deviceID: "dev-0001") == calls, "refused raw_data is never sent again")
        #expect(simulator.authInfoRequestCount(deviceID: "dev-0002") > 0)

        // A restart remembers it.
        #expect(api.daemon.terminate().status == 0)
        let again = try api.site.start()
        defer { _ = again.terminate() }
        again.wait(10, "ready") { again.log.contains("event=ready") }
        Thread.sleep(forTimeInterval: 1.5)
        #expect(simulator.authInfoRequestCount(deviceID: "dev-0001") == calls, "still no call after a restart")

        // New raw_data from the device ends it.
        #expect(try api.unix("/v1/devices/dev-0001/raw_data", ["-X", "PUT", "--data-binary", "RAW-1-NEW"]).status == 204)
        again.wait(10, "a value from the new raw_data") {
            (try? api.unix("/v1/devices/dev-0001/authinfo").body.contains("\"state\":\"fresh\"")) == true
        }
        #expect(simulator.requests(path: "/v3/offlineface/authinfo").last { $0.deviceID == "dev-0001" }?.rawData == "RAW-1-NEW")
    }

    @Test func rawDataOlderThanTheMaximumAgeIsNotSent() throws {
        let site = try Site()
        var config = site.fastConfig(devices: 1, interval: 1, ttl: 60)
        var refresh = config["refresh"] as! [String: Any]
        refresh["raw_data_max_age_seconds"] = 2
        config["refresh"] = refresh
        try site.writeConfig(config)
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(10, "published") { site.allPublished(1) }
        daemon.wait(10, "too old") { daemon.log.contains("event=needs_raw_data device=dev-0001 code=raw_data_too_old") }
        let calls = site.simulator.authInfoRequestCount(deviceID: "dev-0001")
        Thread.sleep(forTimeInterval: 2.5)
        #expect(site.simulator.authInfoRequestCount(deviceID: "dev-0001") == calls)
        let status = try Binary.run(["status", "--config", site.configPath])
        #expect(status.stdout.contains("needs_raw_data") && status.stdout.contains("raw_data_max_age_seconds"), "\(status.stdout)")
    }
}

extension RawDataLifecycleTests {
    /// The on_change hook hears of state changes too, with AUTHINFOD_STATE: a new value (fresh),
    /// then raw_data the gateway refused (needs_raw_data).
    @Test func theHookIsToldTheNewState() throws {
        let site = try Site()
        let output = site.directory.file("hook.out")
        let script = try site.directory.write("hook.sh", "#!/bin/sh\necho \"$AUTHINFOD_DEVICE_ID $AUTHINFOD_STATE\" >> \(output)\n", mode: 0o755)
        try site.writeConfig(site.fastConfig(devices: 1).merging(["on_change": ["command": [script], "timeout_seconds": 4]]) { $1 })
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        let lines = { ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        daemon.wait(10, "the first value's hook") { lines() == ["dev-0001 fresh"] }
        site.simulator.rejectRawData("RAW-1")
        #expect(try Wire.curl(["--unix-socket", site.directory.file("authinfod.sock"), "-X", "POST", "http://localhost/v1/devices/dev-0001/refresh"]).status == 202)
        daemon.wait(10, "the needs_raw_data hook") { lines() == ["dev-0001 fresh", "dev-0001 needs_raw_data"] }
    }
}
