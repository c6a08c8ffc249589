import Foundation
import Testing
import WeChatPaySimulator
@testable import AuthInfoDaemon

@Suite struct DaemonEndToEndTests {
    @Test func fiftyDevicesAreFilledPublishedAndServedByGet() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 50))
        let daemon = try site.start()
        daemon.wait(20, "50 devices published") { site.allPublished(50) }

        var status = stat()
        stat(site.directory.file("devices/dev-0001.json"), &status)
        #expect(status.st_mode & 0o777 == 0o640)
        let document = try #require(site.published("dev-0007"))
        #expect(Set(document.keys) == ["device_id", "authinfo", "fetched_at", "expires_at"])
        #expect(document["device_id"] as? String == "dev-0007")
        let fetched = try #require(document["fetched_at"] as? Int), expires = try #require(document["expires_at"] as? Int)
        #expect(expires - fetched == 3600, "the simulator's expires_in")

        let get = try Binary.run(["get", "dev-0007", "--config", site.configPath])
        #expect(get.status == 0)
        #expect(get.stdout == (document["authinfo"] as! String) + "\n")

        let status_ = try Binary.run(["status", "--json", "--config", site.configPath])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(status_.stdout.utf8)) as? [String: Any])
        let summary = try #require(report["summary"] as? [String: Any])
        #expect(summary["fresh"] as? Int == 50)
        #expect((report["runway_seconds"] as? Int ?? 0) > 3500)

        let (exit, seconds) = daemon.terminate()
        #expect(exit == 0)
        #expect(seconds < 5)
        let log = daemon.log
        #expect(log.contains("event=ready"))
        #expect(log.contains("event=stop"))
        #expect(log.components(separatedBy: "event=refreshed").count - 1 == 50)
        for id in site.deviceIDs(50) {
            for value in site.simulator.issuedAuthInfo(deviceID: id) { #expect(!log.contains(value), "authinfo must never be logged") }
        }
        #expect(!log.contains("RAW-"), "raw_data must never be logged")
    }

    @Test func restartWithTheGatewayDownRepublishesEverythingFromTheCache() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 20))
        let before = try site.fillAndStop(20)

        try FileManager.default.removeItem(atPath: site.directory.file("devices"))
        // A device removed from the config left its document behind.
        try site.directory.write("devices/removed-device.json", #"{"device_id":"removed-device","authinfo":"A","fetched_at":1,"expires_at":2}"#)
        site.simulator.fault = .down
        let requestsBefore = site.simulator.requests().count
        let second = try site.start()
        second.wait(10, "ready") { second.log.contains("event=ready") }
        let after = site.deviceIDs(20).map { site.published($0)?["authinfo"] as? String }
        #expect(after == before, "every value republished from the cache, before any network call")
        #expect(!FileManager.default.fileExists(atPath: site.directory.file("devices/removed-device.json")))
        #expect(site.simulator.requests().count == requestsBefore)
        #expect(second.log.contains("event=published files=20 rewritten=20 removed=1"))
        #expect(second.terminate().status == 0)
    }

    /// A damaged cache starts and serves what it can (found by a review of the streamed start):
    /// two rows that read as one device id (a NUL ends a C string, so SQLite's two ids are one
    /// to Swift) once planned the device twice and trapped; times that are infinite or absurd
    /// trapped where they become integers. Now the first row wins, and such a time is none.
    @Test func aDamagedCacheStartsAndServesWhatItCan() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 4))
        let values = try site.fillAndStop(4)

        do {
            let cache = try SQLiteConnection(path: site.directory.file("state/authinfo.db"))
            try cache.execute("""
                INSERT INTO devices (device_id, authinfo, fetched_at, expires_at)
                    SELECT device_id || char(0) || 'x', 'SHADOW', fetched_at, expires_at FROM devices WHERE device_id = 'dev-0001';
                UPDATE devices SET expires_at = 1e300 WHERE device_id = 'dev-0002';
                UPDATE devices SET fetched_at = 9e999, raw_data_since = -9e999 WHERE device_id = 'dev-0003';
                """)
            #expect(try cache.scalarText("SELECT count(*) FROM devices") == "5")
        }
        site.simulator.fault = .down
        let second = try site.start()
        second.wait(10, "ready") { second.log.contains("event=ready") || !second.process.isRunning }
        #expect(second.process.isRunning, "\(second.log.suffix(2000))")
        let served = site.published("dev-0001")?["authinfo"] as? String
        #expect(served == values[0] || served == "SHADOW", "one of the two rows is served: \(String(describing: served))")
        #expect(site.published("dev-0002") == nil && site.published("dev-0003") == nil, "a value without a usable time is no value")
        #expect(site.published("dev-0004")?["authinfo"] as? String == values[3])
        let status = try Binary.run(["status", "--config", site.configPath])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(second.terminate().status == 0)
    }

    @Test(arguments: [(SimulatorFault.serverError, "code=SYSTEM_ERROR http_status=500"), (.rateLimited, "code=FREQUENCY_LIMITED http_status=429")])
    func serverErrorsAndRateLimitStormsBackOffWithABoundedNumberOfRequests(fault: SimulatorFault, logged: String) throws {
        let site = try Site()
        site.simulator.fault = fault
        try site.writeConfig(site.fastConfig(devices: 10, backoff: (0.2, 1), concurrency: 4))
        let daemon = try site.start()
        Thread.sleep(forTimeInterval: 4)
        let requests = site.simulator.requests(path: "/v3/offlineface/authinfo").count
        // Without outage probing 10 devices backing off 0.2…1 s would send ~50 requests in 4 s.
        #expect(requests >= 3 && requests <= 16, "\(requests) requests during 4 s of HTTP 500")
        #expect(daemon.log.contains("event=outage"))
        #expect(daemon.log.contains(logged))

        site.simulator.fault = .none
        daemon.wait(10, "recovery") { site.allPublished(10) }
        #expect(daemon.log.contains("event=recovered"))
        #expect(daemon.terminate().status == 0)
    }

    @Test func aRejectedDeviceIsNotRetriedFastAndStatusShowsItsCode() throws {
        let site = try Site()
        // A refusal of the device itself (a refusal of its raw_data is needs_raw_data: RawDataLifecycleTests).
        site.simulator.reject(deviceID: "dev-0002", status: 400, code: "PARAM_ERROR", message: "sub_mchid and device_id do not match")
        try site.writeConfig(site.fastConfig(devices: 3, interval: 30, backoff: (0.1, 0.2)))
        let daemon = try site.start()
        daemon.wait(10, "the others filled and dev-0002 rejected") {
            site.published("dev-0001") != nil && site.published("dev-0003") != nil && daemon.log.contains("event=rejected device=dev-0002")
        }
        Thread.sleep(forTimeInterval: 1.5)
        let attempts = site.simulator.requests(path: "/v3/offlineface/authinfo").filter { $0.deviceID == "dev-0002" }.count
        #expect(attempts == 1, "a rejected device waits interval_seconds, not the backoff")
        #expect(daemon.terminate().status == 0)

        let status = try Binary.run(["status", "--config", site.configPath])
        #expect(status.status == 0)
        let row = status.stdout.split(separator: "\n").first { $0.hasPrefix("dev-0002") } ?? ""
        #expect(row.contains("rejected"))
        #expect(row.contains("PARAM_ERROR"))
        #expect(status.stdout.contains("from the cache"))
        let get = try Binary.run(["get", "dev-0002", "--config", site.configPath])
        #expect(get.status == 1)
        #expect(get.stderr.contains("PARAM_ERROR"))
        #expect(try Binary.run(["get", "nope", "--config", site.configPath]).status == 1)
    }

    @Test func getExitsThreeWhenTheOnlyValueHasExpired() throws {
        let site = try Site()
        site.simulator.expiresIn = 2
        try site.writeConfig(site.fastConfig(devices: 1, interval: 30, ttl: 60))
        let daemon = try site.start()
        daemon.wait(10, "filled") { site.allPublished(1) }
        #expect(daemon.terminate().status == 0)
        Thread.sleep(forTimeInterval: 2.2)
        let get = try Binary.run(["get", "dev-0001", "--config", site.configPath])
        #expect(get.status == 3)
        #expect(get.stdout.isEmpty)
        #expect(get.stderr.contains("expired"))
    }

    @Test func expiredValuesAreUnpublishedAndLogged() throws {
        let site = try Site()
        site.simulator.expiresIn = 2
        try site.writeConfig(site.fastConfig(devices: 1, interval: 30, ttl: 60, backoff: (1, 1)))
        let daemon = try site.start()
        daemon.wait(10, "filled") { site.allPublished(1) }
        site.simulator.fault = .down
        // The short lifetime makes the refresh due at 2/3 of it; the gateway is down until expiry.
        daemon.wait(10, "expiry") { daemon.log.contains("event=expired device=dev-0001") }
        #expect(site.published("dev-0001") == nil, "an expired value is no longer served")
        site.simulator.fault = .none
        daemon.wait(10, "refilled") { site.allPublished(1) }
        #expect(daemon.terminate().status == 0)
    }

    @Test func sigkillDuringRefreshStormsLosesNothingAndLeavesNoCorruptFile() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 30, interval: 0.3, ttl: 60, rate: 200, concurrency: 8))
        // Kill points spread over 0.2–0.8 s in a fixed, replayable order.
        let killAfter: [Double] = [0.2, 0.6, 0.33, 0.8, 0.47, 0.27, 0.73, 0.4, 0.53, 0.67]
        for round in 0..<10 {
            let daemon = try site.start()
            if round == 0 { daemon.wait(20, "first fill") { site.allPublished(30) } }
            Thread.sleep(forTimeInterval: killAfter[round])
            daemon.sigkill()
            // What a device reads while the daemon is dead: never a torn or foreign value.
            for id in site.deviceIDs(30) {
                guard FileManager.default.fileExists(atPath: site.directory.file("devices/\(id).json")) else { continue }
                let value = site.published(id)?["authinfo"] as? String
                #expect(value.map { site.simulator.didIssue($0, to: id) } == true, "round \(round): \(id)'s file is whole and issued to it")
            }
        }
        // A clean start reconciles the files with the cache, which is the source of truth.
        let daemon = try site.start()
        daemon.wait(10, "ready") { daemon.log.contains("event=ready") }
        #expect(daemon.terminate().status == 0)

        let connection = try SQLiteConnection(path: site.directory.file("state/authinfo.db"), readOnly: true)
        #expect(try connection.scalarText("PRAGMA integrity_check") == "ok")
        let records = try AuthInfoStore(path: site.directory.file("state/authinfo.db"), readOnly: true).loadAll()
        for id in site.deviceIDs(30) {
            let record = try #require(records[id], "device \(id) lost")
            let value = try #require(record.authinfo)
            #expect(site.simulator.didIssue(value, to: id), "\(id) holds a value the gateway issued")
            #expect(site.published(id)?["authinfo"] as? String == value, "\(id)'s file matches the cache")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: site.directory.file("devices")).filter { !$0.hasSuffix(".json") }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
    }

    /// At start the publish folder is made to match the cache, touching only what the daemon
    /// writes: a removed device's document and a temporary file of its own go; a file of
    /// someone else's (JSON or not, even one named like a temporary file) stays.
    @Test func startTidiesOnlyFilesTheDaemonWrote() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 1))
        let folder = site.directory.file("devices")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let removed = #"{"device_id":"gone-01","authinfo":"OLD","fetched_at":1,"expires_at":2}"#
        try site.directory.write("devices/gone-01.json", removed)
        try site.directory.write("devices/.tmp-dev-0001-123-7", "half a document")
        try site.directory.write("devices/notes.json", #"{"owner":"ops"}"#)
        try site.directory.write("devices/dev-0002.json", #"{"device_id":"someone-else"}"#)
        try site.directory.write("devices/.tmp-keep-me", "not ours")
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(10, "published") { site.allPublished(1) }
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: folder))
        #expect(left == ["dev-0001.json", "notes.json", "dev-0002.json", ".tmp-keep-me"], "\(left)")
    }
}
