import Foundation
import Testing

/// Roles on the Unix socket from the peer's credentials (SO_PEERCRED), with curl run as other
/// users against the real daemon: root is admin; a peer with no grant reads authinfo and
/// nothing else; `listen.unix_clients` grants a group devices and a user admin.
@Suite struct UnixRoleTests {
    /// curl on the site's Unix socket as `uid` (primary group root, so the 0660 socket opens),
    /// with `groups` as supplementary groups.
    static func curl(_ api: APISite, uid: Int, groups: [Int] = [], _ method: String, _ path: String, body: String? = nil) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        let groupArguments = groups.isEmpty ? ["--clear-groups"] : ["--groups", groups.map(String.init).joined(separator: ",")]
        process.arguments = ["--reuid", String(uid), "--regid", "0"] + groupArguments
            + ["/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", method]
            + (body.map { ["--data-binary", $0] } ?? []) + ["--unix-socket", api.socketPath, "http://localhost" + path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self)) ?? 0
    }

    @Test func peersGetWhatTheirCredentialsGrant() throws {
        let api = try APISite(devices: 2, listen: ["unix_clients": [
            ["group": "4242", "devices": ["dev-0002"]],
            ["user": "65533", "admin": true],
        ]])
        defer { _ = api.daemon.terminate() }
        // Let other users reach the socket inside the test's private folder.
        chmod(api.site.directory.path, 0o755)
        let token = #"{"out_user_id":"u1","organization_id":"org-1"}"#

        let nobody = 65534
        #expect(try Self.curl(api, uid: nobody, "GET", "/v1/devices/dev-0001/authinfo") == 200, "anyone who can open the socket reads authinfo")
        #expect(try Self.curl(api, uid: nobody, "GET", "/v1/devices/dev-0002/authinfo") == 200)
        #expect(try Self.curl(api, uid: nobody, "PUT", "/v1/devices/dev-0001/raw_data", body: "RAW-X") == 403)
        #expect(try Self.curl(api, uid: nobody, "POST", "/v1/devices/dev-0001/refresh") == 403)
        #expect(try Self.curl(api, uid: nobody, "POST", "/v1/tokens", body: token) == 403)
        #expect(try Self.curl(api, uid: nobody, "GET", "/v1/status") == 403)
        #expect(try Self.curl(api, uid: nobody, "GET", "/metrics") == 403)
        #expect(try Self.curl(api, uid: nobody, "POST", "/v1/reload") == 403)
        #expect(try Self.curl(api, uid: nobody, "GET", "/healthz") == 200)

        // A member of group 4242 (a supplementary group) writes dev-0002 only.
        #expect(try Self.curl(api, uid: nobody, groups: [4242], "PUT", "/v1/devices/dev-0002/raw_data", body: "RAW-NEW") == 204)
        #expect(try Self.curl(api, uid: nobody, groups: [4242], "PUT", "/v1/devices/dev-0001/raw_data", body: "RAW-NEW") == 403)
        #expect(try Self.curl(api, uid: nobody, groups: [4242], "GET", "/v1/status") == 403)

        // User 65533 is granted admin.
        #expect(try Self.curl(api, uid: 65533, "GET", "/v1/status") == 200)
        #expect(try Self.curl(api, uid: 65533, "GET", "/metrics") == 200)
        #expect(try Self.curl(api, uid: 65533, "POST", "/v1/devices/dev-0001/refresh") == 202)

        // The command line says why, as a user without admin.
        chmod(api.site.configPath, 0o644)
        let status = Process()
        status.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        status.arguments = ["--reuid", String(nobody), "--regid", "0", "--clear-groups", Binary.path, "status", "--config", api.site.configPath]
        let errors = Pipe()
        status.standardError = errors
        status.standardOutput = FileHandle.nullDevice
        try status.run()
        let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        status.waitUntilExit()
        #expect(status.terminationStatus == 1 && said.contains("uid 65534 is not an admin") && said.contains("listen.unix_clients"), "\(said)")

        // Root is admin without a grant.
        #expect(try api.unix("/v1/status").status == 200)
        #expect(try api.unix("/v1/tokens", ["-X", "POST", "--data-binary", token]).status == 200)

        let refusals = api.daemon.log.split(separator: "\n").filter { $0.contains("event=auth_failed") }
        #expect(refusals.count == 1 && refusals[0].contains("client=\"unix uid=65534\"") && refusals[0].contains("reason=out_of_scope"),
                "one line per peer every 10 s, naming it: \(refusals)")
        let metrics = try api.unix("/metrics").body
        // Writes outside a peer's devices (2 by nobody, 1 by the group) and admin actions by
        // non-admins (4 by curl and 1 by `authinfod status` as nobody, 1 by the group), all counted.
        #expect(metrics.contains("authinfod_auth_failures_total{reason=\"out_of_scope\"} 3"), "\(metrics.split(separator: "\n").filter { $0.contains("auth_failures") })")
        #expect(metrics.contains("authinfod_auth_failures_total{reason=\"not_admin\"} 6"))
    }

    @Test func aGrantNamingAnUnknownUserOrGroupIsRefusedNamingTheKey() throws {
        let site = try Site()
        var config = site.config(devices: 1)
        config["listen"] = ["unix_socket": "authinfod.sock", "unix_clients": [["group": "no-such-group-here", "devices": ["*"]]]]
        try site.writeConfig(config)
        let result = try Binary.run(["check-config", "--config", site.configPath])
        #expect(result.status != 0)
        #expect(result.stderr.contains("listen.unix_clients[0].group") && result.stderr.contains("no-such-group-here"), "\(result.stderr)")

        config["listen"] = ["unix_socket": "authinfod.sock", "unix_clients": [["user": "root", "group": "root", "admin": true]]]
        try site.writeConfig(config)
        let both = try Binary.run(["check-config", "--config", site.configPath])
        #expect(both.status != 0 && both.stderr.contains("exactly one of user and group"), "\(both.stderr)")
    }
}
