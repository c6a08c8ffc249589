import Foundation
import Testing

/// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, as here and in CI). The
/// storage fault tests need it and fail, saying why, where it is missing: never a silent skip.
let canMountTmpfs: Bool = {
    let probe = NSTemporaryDirectory() + "/authinfod-mount-probe-\(getpid())"
    try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: probe) }
    guard mount("tmpfs", probe, "tmpfs", 0, "size=64k") == 0 else { return false }
    umount(probe)
    return true
}()

@Suite struct StorageFaultTests {
    @Test
    func aFullDiskIsReportedWhileEverythingStaysServedAndRecoversWhenCleared() throws {
        try #require(canMountTmpfs, "this test mounts a small tmpfs: run it as root with CAP_SYS_ADMIN (as CI does)")
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

    /// Makes `folder` a small tmpfs, read-only when `readOnly`; `remount` switches it.
    func mountTmpfs(_ folder: String, readOnly: Bool) -> Bool {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return mount("tmpfs", folder, "tmpfs", readOnly ? UInt(MS_RDONLY) : 0, "size=1m,mode=0750") == 0
    }

    func remount(_ folder: String, readOnly: Bool) -> Bool {
        mount("tmpfs", folder, "tmpfs", UInt(MS_REMOUNT) | (readOnly ? UInt(MS_RDONLY) : 0), "size=1m,mode=0750") == 0
    }

    @Test
    func aReadOnlyPublishDirIsReportedWhileTheSocketServesAndEveryFileIsRewrittenWhenItClears() throws {
        try #require(canMountTmpfs, "this test mounts a small tmpfs: run it as root with CAP_SYS_ADMIN (as CI does)")
        let site = try Site()
        let folder = site.directory.file("devices")
        #expect(mountTmpfs(folder, readOnly: false))
        defer { umount2(folder, Int32(MNT_DETACH)) }
        try site.writeConfig(site.fastConfig(devices: 3, interval: 0.5, ttl: 60))
        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(10, "filled") { site.allPublished(3) }

        #expect(remount(folder, readOnly: true))
        daemon.wait(5, "the read-only folder reported") { daemon.log.contains("event=publish_failed") && daemon.log.contains("Read-only file system") }
        let status = try Binary.run(["status", "--config", site.configPath])
        #expect(status.stdout.contains("storage fault:") && status.stdout.contains("Read-only"), "\(status.stdout)")
        let socket = site.directory.file("authinfod.sock")
        #expect(try Wire.curl(["--unix-socket", socket, "http://localhost/metrics"]).body.contains("authinfod_storage_fault 1"))
        #expect(try Wire.curl(["--unix-socket", socket, "http://localhost/v1/devices/dev-0001/authinfo"]).status == 200)
        #expect(site.allPublished(3), "the last files written stay readable")

        #expect(remount(folder, readOnly: false))
        daemon.wait(8, "recovered") { daemon.log.contains("event=storage_recovered") }
        #expect(try Wire.curl(["--unix-socket", socket, "http://localhost/metrics"]).body.contains("authinfod_storage_fault 0"))
        #expect(!(try Binary.run(["status", "--config", site.configPath]).stdout.contains("storage fault:")))
        #expect(site.allPublished(3))
    }

    /// The repair does not wait for a refresh: with the gateway down, the files appear as soon
    /// as the folder is writable again.
    @Test
    func aPublishDirUnwritableAtStartIsFilledFromTheCacheOnceWritableEvenWithTheGatewayDown() throws {
        try #require(canMountTmpfs, "this test mounts a small tmpfs: run it as root with CAP_SYS_ADMIN (as CI does)")
        let site = try Site()
        try site.writeConfig(site.fastConfig(devices: 3, interval: 30, ttl: 60))
        let filler = try site.start()
        filler.wait(10, "filled") { site.allPublished(3) }
        #expect(filler.terminate().status == 0)
        let folder = site.directory.file("devices")
        try FileManager.default.removeItem(atPath: folder)
        #expect(mountTmpfs(folder, readOnly: true))
        defer { umount2(folder, Int32(MNT_DETACH)) }
        site.simulator.fault = .down

        let daemon = try site.start()
        defer { _ = daemon.terminate() }
        daemon.wait(10, "ready despite the folder") { daemon.log.contains("event=ready") }
        #expect(daemon.log.contains("event=publish_failed"))
        let socket = site.directory.file("authinfod.sock")
        #expect(try Wire.curl(["--unix-socket", socket, "http://localhost/v1/devices/dev-0002/authinfo"]).status == 200, "served from the cache")
        #expect(site.published("dev-0002") == nil)

        #expect(remount(folder, readOnly: false))
        daemon.wait(8, "every file published from the cache") { site.allPublished(3) }
        #expect(daemon.log.contains("event=storage_recovered"))
        #expect(!daemon.log.contains("event=refreshed device=dev-0002"), "no refresh was needed")
    }
}
