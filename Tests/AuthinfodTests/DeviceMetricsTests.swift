import Foundation
import Testing

/// `authinfod_device_expires_at_seconds{device}` (issue 17): one series per device that holds a
/// value, so an alert can name the device; `metrics.per_device: false` turns it off, on reload too.
@Suite struct DeviceMetricsTests {
    /// The per-device series of a metrics text: device → value.
    private func expiries(_ metrics: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for line in metrics.split(separator: "\n") where line.hasPrefix("authinfod_device_expires_at_seconds{device=\"") {
            let rest = line.dropFirst("authinfod_device_expires_at_seconds{device=\"".count)
            guard let quote = rest.firstIndex(of: "\""), let value = Int(rest[rest.index(quote, offsetBy: 3)...]) else { continue }
            result[String(rest[..<quote])] = value
        }
        return result
    }

    @Test func everyDeviceWithAValueHasItsExpiryAndPerDeviceOffRemovesThem() throws {
        let site = try Site()
        site.simulator.reject(deviceID: "dev-0003")
        let api = try APISite(site: site, devices: 3, waitForValues: false)
        defer { _ = api.daemon.terminate() }
        api.daemon.wait(20, "two values and a rejection") { site.allPublished(2) && api.daemon.log.contains("event=rejected device=dev-0003") }

        let metrics = try api.unix("/metrics").body
        #expect(metrics.contains("# TYPE authinfod_device_expires_at_seconds gauge"))
        let series = expiries(metrics)
        #expect(Set(series.keys) == ["dev-0001", "dev-0002"], "dev-0003 has no value, so no series: \(series)")
        for id in ["dev-0001", "dev-0002"] {
            let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: site.directory.file("devices/\(id).json")))) as? [String: Any]
            #expect(series[id] == document?["expires_at"] as? Int, "the metric is the published expires_at of \(id)")
        }

        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: site.configPath))) as! [String: Any]
        config["metrics"] = ["per_device": false]
        try site.writeConfig(config)
        let reload = try Binary.run(["reload", "--config", site.configPath])
        #expect(reload.status == 0, "\(reload.stderr)")
        let after = try api.unix("/metrics").body
        #expect(expiries(after).isEmpty && !after.contains("authinfod_device_expires_at_seconds"))
        #expect(after.contains("authinfod_runway_seconds "), "the site-wide figures stay")
    }

    @Test func aMisspeltMetricsKeyIsRefusedByName() throws {
        let site = try Site()
        var config = site.fastConfig(devices: 1)
        config["metrics"] = ["per_devices": false]
        try site.writeConfig(config)
        let result = try Binary.run(["check-config", "--config", site.configPath])
        #expect(result.status == 1 && result.stderr.contains("metrics.per_devices"), "\(result.stderr)")
        config["metrics"] = ["per_device": "no"]
        try site.writeConfig(config)
        let wrongType = try Binary.run(["check-config", "--config", site.configPath])
        #expect(wrongType.status == 1 && wrongType.stderr.contains("metrics.per_device"), "\(wrongType.stderr)")
    }
}
