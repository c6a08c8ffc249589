import Foundation
import Testing
@testable import AuthInfoDaemon

/// https to the gateway, with a test CA through `api.ca_file`: the real daemon refreshes over
/// TLS, keeps its connections alive (one handshake per connection, counted in the metrics),
/// and `ca_file` is refused where it would quietly replace the system's roots for a real host.
@Suite struct GatewayTLSTests {
    func tlsConfig(_ site: Site, devices: Int, caFile: String?) -> [String: Any] {
        var api: [String: Any] = ["base_url": "https://localhost:\(site.simulator.port)", "timeout_seconds": 2]
        if let caFile { api["ca_file"] = caFile }
        var config = site.fastConfig(devices: devices, interval: 0.5, ttl: 60, rate: 200, concurrency: 4)
        config["api"] = api
        return config
    }

    @Test func refreshesOverHTTPSReuseTheirConnections() throws {
        let site = try Site(gatewayTLS: true)
        try site.writeConfig(tlsConfig(site, devices: 10, caFile: "gateway-ca.crt"))
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(20, "every device published over https") { site.allPublished(10) }
        // Refreshed every half second: a few rounds of all ten.
        daemon.wait(20, "50 refreshes") { daemon.log.components(separatedBy: "event=refreshed").count > 50 }
        let metrics = Wire.unixBody(site.directory.file("authinfod.sock"), "/metrics")
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("authinfod_gateway_connections_opened_total ") }
        let opened = try #require(line.flatMap { Int($0.split(separator: " ").last ?? "") }, "the metric is exported")
        #expect((1...4).contains(opened), "50+ refreshes over at most 4 concurrent connections opened \(opened) (one TLS handshake each)")
        for id in site.deviceIDs(10) {
            let value = try #require(site.published(id)?["authinfo"] as? String)
            #expect(site.simulator.didIssue(value, to: id))
        }
    }

    @Test func withoutTheCAFileTheGatewayCertificateIsRefused() throws {
        let site = try Site(gatewayTLS: true)
        try site.writeConfig(tlsConfig(site, devices: 1, caFile: nil))
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(10, "the refusal is logged") { daemon.log.contains("certificate not trusted") }
        #expect(site.published("dev-0001") == nil)
        #expect(site.simulator.requests().isEmpty, "nothing was sent over a connection that did not verify")
    }

    @Test func aCAFileIsRefusedForARemoteHostUnlessMeantAndMustHoldCertificates() throws {
        let site = try Site(gatewayTLS: true)
        func refusal(_ api: [String: Any]) throws -> String? {
            var config = site.config(devices: 1)
            config["api"] = api
            try site.writeConfig(config)
            do {
                _ = try ConfigLoader.load(path: site.configPath, environment: [:])
                return nil
            } catch {
                return "\(error)"
            }
        }
        let remote = try refusal(["base_url": "https://api.mch.weixin.qq.com", "ca_file": "gateway-ca.crt"])
        #expect(remote?.contains("api.ca_file") == true && remote?.contains("ca_file_allows_remote") == true, "\(remote ?? "accepted")")
        #expect(try refusal(["base_url": "https://api.mch.weixin.qq.com", "ca_file": "gateway-ca.crt", "ca_file_allows_remote": true]) == nil)
        #expect(try refusal(["base_url": "https://localhost:1", "ca_file": "gateway-ca.crt"]) == nil)
        try site.directory.write("garbage.pem", "not a certificate")
        let garbage = try refusal(["base_url": "https://localhost:1", "ca_file": "garbage.pem"])
        #expect(garbage?.contains("holds no PEM certificate") == true, "\(garbage ?? "accepted")")
        let alone = try refusal(["base_url": "https://api.mch.weixin.qq.com", "ca_file_allows_remote": true])
        #expect(alone?.contains("api.ca_file_allows_remote") == true && alone?.contains("without ca_file") == true, "\(alone ?? "accepted")")
                let missing = try refusal(["base_url": "https://localhost:1", "ca_file": "missing.pem"])
        #expect(missing?.contains("missing or not readable") == true, "\(missing ?? "accepted")")
    }
}
