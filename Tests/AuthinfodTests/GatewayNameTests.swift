import Foundation
import Testing

/// The gateway's name from a DNS server that never answers: the daemon runs in a mount
/// namespace whose /etc/resolv.conf points at a loopback UDP socket that reads queries and
/// answers none (with a 30 s resolver timeout, so only the daemon's own bound ends the wait).
@Suite struct GatewayNameTests {
    /// A UDP socket on `address`:53 that takes DNS queries and never answers.
    final class SilentDNSServer {
        let fd: Int32

        init(address: String) throws {
            fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_port = UInt16(53).bigEndian
            local.sin_addr.s_addr = inet_addr(address)
            let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard bound == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        }

        deinit { close(fd) }

        /// Queries received since the last call.
        func drain() -> Int {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var count = 0
            while recv(fd, &buffer, buffer.count, 0) > 0 { count += 1 }
            return count
        }
    }

    @Test func aHangingDNSServerEndsInALoggedRetryableErrorWithinTheTimeoutAndFailsOver() throws {
        let dns = try SilentDNSServer(address: "127.0.0.77")
        let site = try Site()
        let resolv = try site.directory.write("resolv.conf", "nameserver 127.0.0.77\noptions timeout:30 attempts:1\n", mode: 0o644)
        var config = site.fastConfig(devices: 2, backoff: (0.5, 1))
        config["api"] = ["base_url": "https://gateway.authinfod.test", "timeout_seconds": 2]
        try site.writeConfig(config)
        // A private mount namespace, where /etc/resolv.conf is ours; the host's stays untouched.
        let launcher = ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                        "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"", resolv]
        let daemon = try site.start(launcher: launcher)
        defer { _ = daemon.terminate() }
        daemon.wait(10, "a refresh failing on the name") { daemon.log.contains("event=refresh_failed") }
        let failed = daemon.log.split(separator: "\n").first { $0.contains("event=refresh_failed") } ?? ""
        #expect(failed.contains("resolving gateway.authinfod.test timed out"), "\(failed)")
        #expect(failed.contains("retry_in="), "a retryable failure, retried with backoff: \(failed)")
        #expect(dns.drain() > 0, "the daemon did ask the silent DNS server")
        #expect(!daemon.log.contains("event=rejected"))
        #expect(daemon.process.isRunning)
        // The call ended at the timeout (2 s), not at the resolver's 30 s.
        #expect(try #require(logTime(daemon.log, "event=refresh_failed")) - (try #require(logTime(daemon.log, "event=ready"))) < 3.5)

        // With a backup domain, the hung name costs half of the timeout and the backup answers.
        config["api"] = ["base_url": "https://gateway.authinfod.test", "backup_base_url": site.simulator.baseURL.absoluteString, "timeout_seconds": 2]
        try site.writeConfig(config)
        kill(daemon.process.processIdentifier, SIGHUP)
        daemon.wait(15, "both devices filled through the backup") { site.allPublished(2) }
    }

    /// Seconds since midnight of the first log line containing `marker` (its `ts=` field).
    func logTime(_ log: String, _ marker: String) -> Double? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains(marker) }),
              let ts = line.split(separator: " ").first(where: { $0.hasPrefix("ts=") }) else { return nil }
        let clock = ts.dropFirst(3).split(separator: "T").last?.dropLast() ?? ""
        let parts = clock.split(separator: ":").compactMap { Double($0) }
        guard parts.count == 3 else { return nil }
        return parts[0] * 3600 + parts[1] * 60 + parts[2]
    }
}
