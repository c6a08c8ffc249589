import Foundation
import Synchronization
import Testing
@testable import AuthInfoDaemon

/// A wall clock that can jump, over the real monotonic clock.
final class JumpingClock: Sendable {
    private let offset = Mutex<Double>(0)

    func jump(_ seconds: Double) { offset.withLock { $0 += seconds } }

    var clock: DaemonClock {
        DaemonClock(wall: { [self] in Date().timeIntervalSince1970 + offset.withLock { $0 } }, monotonic: DaemonClock.system.monotonic)
    }
}

@Suite struct ClockJumpTests {
    /// The cache is filled by the real binary first, so the in-process daemon makes no network
    /// call (its tasks would share the test runner's cooperative threads with blocking tests).
    @Test func wallClockJumpsCauseNoRefreshStormAndNoEarlyExpiry() throws {
        let site = try Site()
        site.simulator.expiresIn = 60
        try site.writeConfig(site.fastConfig(devices: 5, interval: 30, ttl: 60))
        try site.fillAndStop(5)
        let (configuration, credentials) = try ConfigLoader.loadWithSecrets(path: site.configPath, environment: [:])
        let logFD = open(site.directory.file("daemon.log"), O_WRONLY | O_CREAT | O_APPEND, 0o600)
        defer { close(logFD) }
        let jumping = JumpingClock()
        let daemon = Daemon(configuration: configuration, credentials: credentials, logger: Logger(level: .debug, fd: logFD, environment: [:]),
                            clock: jumping.clock, notifier: SystemdNotifier(environment: [:]))
        try daemon.start()
        defer { daemon.stop() }
        #expect(site.allPublished(5))
        let requests = site.simulator.requests().count

        for jump in [3600.0, -7200.0] {
            jumping.jump(jump)
            Thread.sleep(forTimeInterval: 1.5)
            #expect(site.simulator.requests().count == requests, "a \(Int(jump)) s jump started refreshes")
            #expect(site.allPublished(5), "files stay published after a \(Int(jump)) s jump")
            let document = try #require(daemon.document(for: "dev-0001"))
            #expect(document.state == .fresh, "the socket still says fresh after a \(Int(jump)) s jump")
            let report = daemon.statusReport()
            #expect(report.count(.fresh) == 5)
            #expect(report.devices.allSatisfy { ($0.nextAttemptAt ?? 0) - report.generatedAt > 15 }, "no refresh scheduled early")
            #expect((report.runway ?? 0) > 50, "runway measured on the monotonic clock")
            let summary = daemon.statusSummary()
            #expect(summary.devices == 5 && summary.count(.fresh) == 5 && abs((summary.runway ?? 0) - (report.runway ?? 0)) < 1,
                    "the summary says what the report says")
        }
        let log = try String(contentsOfFile: site.directory.file("daemon.log"), encoding: .utf8)
        #expect(!log.contains("event=expired"))
    }
}
