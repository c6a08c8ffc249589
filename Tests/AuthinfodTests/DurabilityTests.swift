import Foundation
import Testing
@testable import AuthInfoDaemon

/// The cache's power-loss bound (README "Durability"): commits share one `fdatasync` of the
/// write-ahead log, made within a second of each (a killed process loses nothing either way;
/// `DaemonEndToEndTests` kills it).
@Suite(.serialized) struct DurabilityTests {
    /// Under a refresh storm the real daemon, traced by strace, writes many commits into the
    /// write-ahead log and syncs it far less often than once per commit (with `synchronous=FULL`
    /// it was once per commit), and never leaves a write unsynced for much more than a second.
    @Test func commitsShareOneSyncAndEachIsSyncedWithinASecond() throws {
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 20, interval: 0.3, ttl: 60, rate: 200, concurrency: 8))
        let trace = site.directory.file("strace.txt")
        let daemon = try site.start(launcher: ["/usr/bin/strace", "-f", "-qq", "-ttt", "-y", "-o", trace,
                                               "-e", "trace=pwrite64,fdatasync,fsync", "-e", "signal=none"])
        defer { _ = daemon.terminate() }
        daemon.wait(20, "the first fill") { site.allPublished(20) }
        Thread.sleep(forTimeInterval: 3)
        let strace = daemon.process.processIdentifier
        let children = try String(contentsOfFile: "/proc/\(strace)/task/\(strace)/children", encoding: .utf8)
        let pid = try #require(children.split(separator: " ").first.flatMap { Int32($0) }, "strace has no child")
        kill(pid, SIGTERM)
        daemon.process.waitUntilExit()

        let refreshes = daemon.log.components(separatedBy: "event=refreshed").count - 1
        // Lines look like `<pid> 1764770000.123456 pwrite64(5</path/authinfo.db-wal>, …) = 4152`.
        var writes: [Double] = [], syncs: [Double] = []
        for line in try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n") where line.contains("authinfo.db-wal>") {
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let time = Double(fields[1]) else { continue }
            if fields[2].hasPrefix("pwrite64(") { writes.append(time) }
            if fields[2].hasPrefix("fdatasync(") || fields[2].hasPrefix("fsync(") { syncs.append(time) }
        }
        #expect(refreshes >= 60, "a storm: \(refreshes) refreshes")
        #expect(writes.count >= refreshes, "every refresh is committed to the log: \(writes.count) writes, \(refreshes) refreshes")
        #expect(!syncs.isEmpty && syncs.count * 10 <= refreshes, "\(syncs.count) syncs for \(refreshes) commits")
        for write in writes {
            let synced = syncs.first { $0 >= write }
            #expect(synced.map { $0 - write <= 1.5 } == true, "a log write at \(write) waited \(synced.map { String($0 - write) } ?? "forever") s for its sync")
        }
    }
}
