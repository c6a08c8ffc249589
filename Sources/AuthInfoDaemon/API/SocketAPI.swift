import FoundationEssentials
import Glibc
import SystemCalls
import HTTPServer
import Synchronization
import WeChatPay

/// The socket API's listening side: the Unix socket (local callers) and the LAN TCP listener
/// (bearer-token clients), one `HTTPServer` each, and the table of TCP clients.
///
/// Listen settings change in two steps. `stage` makes everything new ready — sockets bound,
/// the client table built from the tokens the configuration carries — and changes nothing in
/// service; a failure undoes what it bound. `commit` then swaps the client table in place (open
/// connections keep working, a rotated-out token fails from its next request), and only then
/// stops the listeners no longer wanted. At no point is a configured socket missing.
final class SocketAPI: Sendable {
    /// New listen settings made ready by `stage`, not yet in service.
    struct Staged: Sendable {
        fileprivate let listen: Configuration.Listen
        fileprivate let clients: TokenAuthenticator
        fileprivate let roles: UnixRoles
        fileprivate var unix: BoundListener?
        fileprivate var tcp: BoundListener?
    }

    private struct Active: Sendable {
        var listen: Configuration.Listen?
        var unix: BoundListener?
        var tcp: BoundListener?
    }

    private let unixServer: HTTPServer
    private let tcpServer: HTTPServer
    private let clients = ClientTable()
    private let active = Mutex(Active())
    private let logger: Logger
    /// What `POST /v1/reload` runs (the daemon sets it).
    let reloader = Reloader()

    /// An API answering from `service`; it listens once a staged configuration is committed.
    init(service: any DeviceService, logger: Logger) {
        self.logger = logger
        let connectionLimits = ConnectionLimits(logger: logger)
        let open = OpenConnections()
        let context = RouteContext(service: service, served: service.served, logger: logger, authFailures: AuthFailures(logger: logger), reloader: reloader,
                                   connectionLimits: connectionLimits, openConnections: open)
        let clients = self.clients
        let budget = DescriptorBudget.current()
        var unixConfiguration = HTTPServer.Configuration()
        unixConfiguration.maximumConnections = budget.unixConnections
        unixServer = HTTPServer(label: "authinfod.unix", configuration: unixConfiguration) { request, responder in
            Self.route(request, caller: clients.unixCaller(request), context: context, responder)
        }
        var tcpConfiguration = HTTPServer.Configuration()
        tcpConfiguration.onLimit = { connectionLimits.record($0) }
        tcpServer = HTTPServer(label: "authinfod.tcp", configuration: tcpConfiguration) { request, responder in
            guard let caller = clients.authenticate(request) else {
                context.authFailures.record(request.header("Authorization") == nil ? .missingToken : .invalidToken, peer: request.peer, caller: nil)
                var response = HTTPResponse.error(401, "unauthorized")
                response.headers.append(("WWW-Authenticate", "Bearer realm=\"authinfod\""))
                return responder.respondNow(response)
            }
            Self.route(request, caller: caller, context: context, responder)
        }
        open.set(unix: unixServer, tcp: tcpServer)
    }

    /// Binds what `listen` adds or moves, and builds its client table; nothing in service changes.
    func stage(_ listen: Configuration.Listen) throws(DaemonError) -> Staged {
        let current = active.withLock { $0.listen }
        var staged = Staged(listen: listen, clients: TokenAuthenticator(clients: listen.tcpClients), roles: UnixRoles(listen.unixClients))
        if let path = listen.unixSocket, path != current?.unixSocket {
            let directory = PathText.directory(of: path)
            try? Directories.create(directory, mode: 0o750)
            do {
                staged.unix = try unixServer.listen(on: .unix(path: path, mode: mode_t(listen.unixSocketMode)))
            } catch {
                throw DaemonError(description: "cannot listen on listen.unix_socket \(path): \(error)")
            }
        }
        if listen.tls != nil && listen.tls?.context == nil {
            discard(staged)
            throw DaemonError(description: "listen.tls: the certificate and key were not loaded")
        }
        if let tcp = listen.tcp, tcp.host != current?.tcp?.host || tcp.port != current?.tcp?.port {
            do {
                staged.tcp = try tcpServer.listen(on: .tcp(host: tcp.host, port: tcp.port), tls: listen.tls?.context)
            } catch {
                discard(staged)
                throw DaemonError(description: "cannot listen on listen.tcp \(ListenAddress.tcp(host: tcp.host, port: tcp.port)): \(error)")
            }
        }
        return staged
    }

    /// Stops what `staged` bound (a reload refused after staging).
    func discard(_ staged: Staged) {
        if let unix = staged.unix { unixServer.stopListening(unix) }
        if let tcp = staged.tcp { tcpServer.stopListening(tcp) }
    }

    /// Puts `staged` in service: the client table first, then the new listeners replace the old.
    func commit(_ staged: Staged) {
        clients.replace(tcp: staged.clients, unix: staged.roles)
        let listen = staged.listen
        let budget = DescriptorBudget.current()
        let tcpCap = budget.tcpConnections(configured: listen.maxConnections)
        tcpServer.setConnectionLimits(maximum: tcpCap, perAddress: min(listen.maxConnectionsPerAddress, tcpCap))
        if listen.tcp != nil && tcpCap < listen.maxConnections {
            logger.warning("descriptor_limit", ["open_files": budget.openFiles, "max_connections": tcpCap, "configured": listen.maxConnections,
                                                "hint": "the open-file limit leaves room for only \(tcpCap) LAN connections beside the reserve; raise LimitNOFILE= (the shipped unit sets 65536)"])
        }
        let (retired, previous) = active.withLock { active -> ([(HTTPServer, BoundListener)], Configuration.Listen?) in
            let previous = active.listen
            var retired: [(HTTPServer, BoundListener)] = []
            /// The listener in service becomes `new` when one was staged, or none when the
            /// listener is off; what it replaces is retired.
            func swap(_ current: inout BoundListener?, _ new: BoundListener?, configured: Bool, on server: HTTPServer) {
                guard new != nil || !configured, let old = current else {
                    if new != nil { current = new }
                    return
                }
                retired.append((server, old))
                current = new
            }
            swap(&active.unix, staged.unix, configured: listen.unixSocket != nil, on: unixServer)
            swap(&active.tcp, staged.tcp, configured: listen.tcp != nil, on: tcpServer)
            active.listen = listen
            return (retired, previous)
        }
        for (server, listener) in retired { server.stopListening(listener) }
        if staged.tcp == nil, let kept = active.withLock({ $0.tcp }) {
            // Same address: new connections get the certificate and key just read; open ones
            // finish with what they started with.
            tcpServer.setTLS(listen.tls?.context, for: kept)
        }
        if previous?.tcp != nil && listen.tcp == nil {
            // The LAN listener is off: its clients' connections go with it.
            tcpServer.shutdown()
        }
        if previous?.unixSocket != nil && listen.unixSocket == nil { unixServer.shutdown() }
        if let path = listen.unixSocket {
            if staged.unix == nil && previous?.unixSocketMode != listen.unixSocketMode {
                // Same socket, new mode: changed in place, no socket is ever missing.
                chmod(path, mode_t(listen.unixSocketMode))
            }
            if staged.unix != nil || previous?.unixSocketMode != listen.unixSocketMode {
                logger.info("listening", ["unix_socket": path, "mode": "0" + String(listen.unixSocketMode, radix: 8)])
            }
        }
        if let tcp = listen.tcp, listen.tls == nil, !ConfigLoader.isLoopback(tcp.host) {
            logger.warning("plaintext_listener", ["tcp": ListenAddress.tcp(host: tcp.host, port: tcp.port).description,
                                                  "hint": "allow_plaintext is set: authinfo and tokens cross the LAN in clear; set listen.tls"])
        }
        if let tcp = staged.tcp {
            logger.info("listening", ["tcp": ListenAddress.tcp(host: tcp.address.tcpHost, port: tcp.port).description,
                                      "tls": listen.tls == nil ? "off" : "on", "clients": listen.tcpClients.count])
        } else if listen.tcp != nil, !Self.sameClients(previous?.tcpClients ?? [], listen.tcpClients) {
            logger.info("tcp_clients", ["clients": listen.tcpClients.count])
        }
    }

    /// Stops every listener and closes every connection.
    func shutdown() {
        unixServer.shutdown()
        tcpServer.shutdown()
        active.withLock { $0 = Active() }
    }

    /// The TCP port in service (the one picked, for port 0), or nil.
    var tcpPort: UInt16? { active.withLock { $0.tcp?.port } }

    static func sameClients(_ a: [Configuration.TCPClient], _ b: [Configuration.TCPClient]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.name == $1.name && $0.devices == $1.devices && $0.admin == $1.admin && sameToken($0.token, $1.token) }
    }
}

private func sameToken(_ a: SecretBytes?, _ b: SecretBytes?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return b.withUnsafeBytes { a.constantTimeEquals($0) }
}

extension ListenAddress {
    fileprivate var tcpHost: String {
        if case .tcp(let host, _) = self { return host }
        return ""
    }
}
