import Foundation
import HTTPServer

extension Daemon {
    /// Starts the Unix socket and, when configured, the LAN TCP listener. A listener that cannot
    /// start stops the daemon's start with an error naming it.
    func startListeners() throws(DaemonError) {
        if let path = configuration.listen.unixSocket {
            let directory = (path as NSString).deletingLastPathComponent
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            let server = HTTPServer(label: "authinfod.unix") { [weak self] request, responder in
                guard let self else { return responder.respond(.error(503, "stopping")) }
                self.serve(request, caller: .local, responder)
            }
            do {
                try server.listen(on: .unix(path: path, mode: mode_t(configuration.listen.unixSocketMode)))
            } catch {
                throw DaemonError(description: "cannot listen on listen.unix_socket \(path): \(error)")
            }
            servers.append(server)
            logger.info("listening", ["unix_socket": path, "mode": "0" + String(configuration.listen.unixSocketMode, radix: 8)])
        }
        if let tcp = configuration.listen.tcp {
            var entries: [TokenAuthenticator.Entry] = []
            for (index, client) in configuration.listen.tcpClients.enumerated() {
                do {
                    entries.append(.init(client: client, token: try TCPClientToken.load(client, key: "listen.tcp_clients[\(index)]", file: configuration.file)))
                } catch {
                    throw DaemonError(description: "\(error)")
                }
            }
            let authenticator = TokenAuthenticator(entries: entries)
            let server = HTTPServer(label: "authinfod.tcp") { [weak self] request, responder in
                guard let self else { return responder.respond(.error(503, "stopping")) }
                guard let caller = authenticator.authenticate(request) else {
                    var response = HTTPResponse.error(401, "unauthorized")
                    response.headers.append(("WWW-Authenticate", "Bearer realm=\"authinfod\""))
                    return responder.respond(response)
                }
                self.serve(request, caller: caller, responder)
            }
            let port: UInt16
            do {
                port = try server.listen(on: .tcp(host: tcp.host, port: tcp.port))
            } catch {
                throw DaemonError(description: "cannot listen on listen.tcp \(tcp.host):\(tcp.port): \(error)")
            }
            servers.append(server)
            logger.info("listening", ["tcp": "\(tcp.host):\(port)", "clients": entries.count])
        }
    }
}
