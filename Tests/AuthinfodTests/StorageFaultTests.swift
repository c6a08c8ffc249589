import Foundation
import Testing

/// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, as in CI here).
let canMountTmpfs: Bool = {
    let probe = NSTemporaryDirectory() + "/authinfod-mount-probe-\(getpid())"
    try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: probe) }
    guard mount("tmpfs", probe, "tmpfs", 0, "size=64k") == 0 else { return false }
    umount(probe)
    return true
}()

@Suite struct StorageFaultTests {
    @Test(.enabled(if: canMountTmpfs, "needs permission to mount a tmpfs"))
    func aFullDiskIsReportedWhileEverythingStaysServedAndRecoversWhenCleared() throws {
        let site = try Site()
        let disk = site.directory.file("disk")
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        #expect(mount("tmpfs", disk, "tmpfs", 0, "size=256k") == 0)
        defer { umount2(disk, Int32(MNT_DETACH)) }
        var config = site.fastConfig(devices: 3, interval: 0.5, ttl: 60)
        config["storage"] = ["database": "disk/state/authinfo.db", "publish_dir": "disk/devices"]
        try site.writeConfig(config)
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        let published = { (id: String) in FileManager.default.contents(atPath: site.directory.file("disk/devices/\(id).json")) != nil }
        daemon.wait(10, "filled") { ["dev-0001", "dev-0002", "dev-0003"].allSatisfy(published) }

        // Fill the disk.
        let filler = disk + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        let block = [UInt8](repeating: 0x41, count: 4096)
        while write(fd, block, block.count) > 0 {}
        close(fd)
        daemon.wait(10, "the full disk reported") { daemon.log.contains("event=storage_error") || daemon.log.contains("event=publish_failed") }
        let status = try Binary.run(["status", "--config", site.configPath])
        #expect(status.stdout.contains("storage fault:"), "\(status.stdout)")
        let metrics = try Wire.curl(["--unix-socket", site.directory.file("authinfod.sock"), "http://localhost/metrics"]).body
        #expect(metrics.contains("authinfod_storage_fault 1"))
        let answer = try Wire.curl(["--unix-socket", site.directory.file("authinfod.sock"), "http://localhost/v1/devices/dev-0002/authinfo"])
        #expect(answer.status == 200, "still served from memory")
        #expect(["dev-0001", "dev-0002", "dev-0003"].allSatisfy(published), "published files stay")

        try FileManager.default.removeItem(atPath: filler)
        daemon.wait(10, "recovery logged") { daemon.log.contains("event=storage_recovered") }
        let after = try Wire.curl(["--unix-socket", site.directory.file("authinfod.sock"), "http://localhost/metrics"]).body
        #expect(after.contains("authinfod_storage_fault 0"))
        #expect(daemon.terminate().status == 0)
        let records = try Binary.run(["get", "dev-0003", "--config", site.configPath])
        #expect(records.status == 0, "the cache is usable after the fault: \(records.stderr)")
    }
}
