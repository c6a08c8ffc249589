import CLinux
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SystemCalls

/// An HTTP/1.1 server on non-blocking sockets and one epoll thread (`EventLoop`): no thread
/// per connection, strict request limits, a timeout that cuts slow clients, a cap on open
/// connections, keep-alive, and responses in request order.
///
/// Its listeners and connections live on the loop thread (`ServerCore`, reached through
/// `LoopBound`). The handler runs on that thread and must not block; it answers through the
/// `HTTPResponder` it is given: `respondNow` before returning, or `respond` later from any thread.
public final class HTTPServer: Sendable {
    /// Limits and timeouts for untrusted clients.
    public struct Configuration: Sendable {
        public var limits = HTTPLimits()
        /// Seconds a client has to send a whole request (and to take a response), and the
        /// keep-alive idle time.
        public var requestTimeout: Double = 10
        /// Open connections at most. A connection beyond it takes the place of the connection
        /// idle the longest; when none is idle, it is closed as soon as it is accepted.
        public var maximumConnections = 1024
        /// Open connections at most from one client address (an IPv6 client: its /64), with the
        /// same rule; nil for no per-address cap (a Unix socket has no address).
        public var maximumConnectionsPerAddress: Int?
        /// Told (on the loop thread, so it must not block) of every connection a cap closed.
        public var onLimit: (@Sendable (ConnectionLimitEvent) -> Void)?

        public init() {}
    }

    public typealias Handler = @Sendable (HTTPRequest, HTTPResponder) -> Void

    let loop: EventLoop
    private let core: LoopBound<ServerCore>
    private let openCount = OpenConnectionCount()

    /// A server whose handler runs on a loop thread named `label`.
    public init(label: String, configuration: Configuration = Configuration(), handler: @escaping Handler) {
        loop = EventLoop(name: label)
        core = LoopBound(ServerCore(configuration: configuration, handler: handler, loop: loop, openCount: openCount), on: loop.thread)
    }

    deinit {
        let core = self.core
        loop.sync { core.value.shutdown() }
        loop.stop()
    }

    /// Starts listening on `address`; returns the listener, with the TCP port bound (the one
    /// asked for, or the free one picked for port 0; 0 for a Unix socket). A server may listen on
    /// several addresses at once; each listener stops on its own (`stopListening(_:)`).
    @discardableResult
    public func listen(on address: ListenAddress, tls: TLSServerContext? = nil) throws(SystemError) -> BoundListener {
        let socket: ListeningSocket.Bound
        switch address {
        case .tcp(let host, let requested): socket = try ListeningSocket.tcp(host: host, port: requested)
        case .unix(let path, let mode): socket = try ListeningSocket.unix(path: path, mode: mode)
        }
        let core = self.core
        return loop.sync { core.value.listen(socket, address: address, tls: tls) }
    }

    /// Serves the connections `listener` accepts from now on with `tls` (nil: plain HTTP);
    /// connections already open keep what they started with.
    public func setTLS(_ tls: TLSServerContext?, for listener: BoundListener) {
        let core = self.core
        loop.sync { core.value.setTLS(tls, for: listener.id) }
    }

    /// Stops accepting on `listener` (its Unix socket file is removed while it is still the one
    /// this listener bound); connections it accepted stay open.
    public func stopListening(_ listener: BoundListener) {
        let core = self.core
        loop.sync { core.value.stopListening(listener.id) }
    }

    /// Stops accepting on every listener (new connections are refused); open connections stay.
    public func stopListening() {
        let core = self.core
        loop.sync { core.value.stopListening(nil) }
    }

    /// Stops listening and closes every connection.
    public func shutdown() {
        let core = self.core
        loop.sync { core.value.shutdown() }
    }

    /// Number of open client connections, from any thread (metrics and tests).
    public var connectionCount: Int { openCount.value.load(ordering: .relaxed) }

    /// Changes the connection caps; connections already open beyond them stay until they close
    /// or are shed by newer ones.
    public func setConnectionLimits(maximum: Int, perAddress: Int?) {
        let core = self.core
        loop.sync {
            core.value.configuration.maximumConnections = maximum
            core.value.configuration.maximumConnectionsPerAddress = perAddress
        }
    }
}

/// A connection a cap closed: the client's address, which cap, and whether the new connection
/// was refused or an idle one was shed to make room for it.
public struct ConnectionLimitEvent: Sendable {
    public enum Cap: String, Sendable {
        case total
        case perAddress = "per_address"
    }

    public enum Action: String, Sendable {
        /// The new connection was closed: every connection under the cap was busy.
        case refused
        /// The connection idle the longest was closed to let the new one in.
        case shedIdle = "shed_idle"
    }

    /// The address (or IPv6 /64) the cap counts.
    public let address: String
    public let cap: Cap
    public let action: Action
}

/// How many connections a server has open: written on its loop thread, read from any.
final class OpenConnectionCount: Sendable {
    let value = Atomic<Int>(0)
}

/// What a server holds on its loop thread: listeners, connections, the shared read buffer.
final class ServerCore {
    var configuration: HTTPServer.Configuration
    let handler: HTTPServer.Handler
    let loop: EventLoop
    private var listeners: [ObjectIdentifier: Listener] = [:]
    private(set) var connections: [ObjectIdentifier: HTTPConnection] = [:]
    /// `connections.count`, readable from any thread.
    let openCount: OpenConnectionCount
    /// Open connections by client address (`Peer.address`), oldest first.
    private var byAddress: [String: [HTTPConnection]] = [:]
    /// The `Date` field, remade once a second for every answer of this loop.
    var date = HTTPDate()
    /// One read buffer for every connection: they all read on the loop thread, one at a time.
    var readBuffer = [UInt8](repeating: 0, count: 16384)

    init(configuration: HTTPServer.Configuration, handler: @escaping HTTPServer.Handler, loop: EventLoop, openCount: OpenConnectionCount) {
        self.configuration = configuration
        self.openCount = openCount
        self.handler = handler
        self.loop = loop
    }

    func listen(_ socket: ListeningSocket.Bound, address: ListenAddress, tls: TLSServerContext?) -> BoundListener {
        let listener = Listener(socket: socket, address: address, core: self)
        listener.tls = tls
        listeners[ObjectIdentifier(listener)] = listener
        listener.start()
        return BoundListener(id: ObjectIdentifier(listener), address: address, port: socket.port)
    }

    func setTLS(_ tls: TLSServerContext?, for id: ObjectIdentifier) {
        listeners[id]?.tls = tls
    }

    /// Stops the listener `id`, or every listener when nil.
    func stopListening(_ id: ObjectIdentifier?) {
        if let id {
            listeners.removeValue(forKey: id)?.stop()
        } else {
            for listener in listeners.values { listener.stop() }
            listeners.removeAll()
        }
    }

    func shutdown() {
        stopListening(nil)
        for connection in connections.values { connection.close() }
    }

    func accepted(_ fd: Int32, unix: Bool, tls: TLSServerContext?) {
        let peer = unix ? Peer(unix: fd) : Peer(tcp: fd)
        if let address = peer.address, let cap = configuration.maximumConnectionsPerAddress, let same = byAddress[address], same.count >= cap {
            guard makeRoom(among: same, address: address, cap: .perAddress) else {
                Glibc.close(fd)
                return
            }
        }
        if connections.count >= configuration.maximumConnections {
            guard makeRoom(among: connections.values, address: peer.address ?? "unix", cap: .total) else {
                Glibc.close(fd)
                return
            }
        }
        let session = tls.flatMap { TLSSession(context: $0, fd: fd) }
        guard tls == nil || session != nil else {
            Glibc.close(fd)
            return
        }
        let connection = HTTPConnection(fd: fd, core: self, peer: peer, tls: session)
        connections[ObjectIdentifier(connection)] = connection
        openCount.value.store(connections.count, ordering: .relaxed)
        if let address = peer.address { byAddress[address, default: []].append(connection) }
        connection.start()
        if connections.count == 1 {
            // Deadlines are checked by a tick that runs only while connections are open, so an
            // idle server wakes nobody and a request costs no timer syscalls.
            loop.setTick(max(0.05, min(1, configuration.requestTimeout / 4))) { [weak self] in self?.sweepConnections() }
        }
    }

    func closed(_ connection: HTTPConnection) {
        connections[ObjectIdentifier(connection)] = nil
        openCount.value.store(connections.count, ordering: .relaxed)
        if let address = connection.peer.address, var same = byAddress[address] {
            same.removeAll { $0 === connection }
            byAddress[address] = same.isEmpty ? nil : same
        }
        if connections.isEmpty { loop.setTick(nil, nil) }
    }

    /// Closes the connection among `candidates` idle the longest, to let a new one in; false
    /// (the new one is refused) when every one of them is busy.
    private func makeRoom(among candidates: some Sequence<HTTPConnection>, address: String, cap: ConnectionLimitEvent.Cap) -> Bool {
        let oldest = candidates.filter(\.isIdle).min { $0.lastActive < $1.lastActive }
        configuration.onLimit?(ConnectionLimitEvent(address: address, cap: cap, action: oldest == nil ? .refused : .shedIdle))
        guard let oldest else { return false }
        oldest.close()
        return true
    }

    private func sweepConnections() {
        let now = MonotonicClock.coarse()
        for connection in connections.values where connection.deadline <= now { connection.timedOut() }
    }
}

/// Answers one request. Call it exactly once; later calls are ignored. A handler that answers
/// before returning uses `respondNow`; one that answers later, from any thread, `respond`.
public struct HTTPResponder: Sendable {
    let loop: EventLoop
    let connection: LoopBound<HTTPConnection>
    let sequence: UInt64

    public func respond(_ response: HTTPResponse) {
        let connection = self.connection, sequence = self.sequence
        loop.execute { connection.value.send(response, for: sequence) }
    }

    /// Closes the connection without answering (the simulator's lost connection).
    public func hangUp() {
        let connection = self.connection, sequence = self.sequence
        loop.execute { connection.value.hangUp(for: sequence) }
    }

    /// Answers synchronously. Only from inside the handler, on the server's loop thread.
    public func respondNow(_ response: HTTPResponse) {
        precondition(connection.thread.isCurrent, "respondNow outside the server's loop thread")
        connection.value.send(response, for: sequence)
    }
}

/// A listening socket of an `HTTPServer`: where it listens, and the handle to stop it by.
public struct BoundListener: Sendable, Hashable {
    let id: ObjectIdentifier
    public let address: ListenAddress
    /// The TCP port bound (0 for a Unix socket).
    public let port: UInt16

    public static func == (a: Self, b: Self) -> Bool { a.id == b.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

/// One listening socket, watched by the loop. Lives on the loop thread.
final class Listener {
    let fd: Int32
    let address: ListenAddress
    /// TLS for the connections it accepts from now on (a reload may replace it).
    var tls: TLSServerContext?
    /// The socket file's identity, for a Unix socket: removed at stop only while the path still
    /// names this file (a reload may have bound a new socket there since).
    private let file: (device: UInt64, inode: UInt64)?
    /// Weak: the core owns its listeners and stops them before it goes.
    private weak var core: ServerCore?
    private let loop: EventLoop
    private var active = false

    init(socket: ListeningSocket.Bound, address: ListenAddress, core: ServerCore) {
        fd = socket.fd
        file = socket.file
        self.address = address
        self.core = core
        loop = core.loop
    }

    /// Watches the socket; the loop owns the listener until `stop()` unregisters it.
    func start() {
        active = true
        loop.register(fd, events: EPOLLIN.rawValue) { [self] _ in acceptAll() }
    }

    func stop() {
        guard active else { return }
        active = false
        loop.unregister(fd)
        Glibc.close(fd)
        if case .unix(let path, _) = address, let file {
            var status = stat()
            if lstat(path, &status) == 0, UInt64(status.st_dev) == file.device, UInt64(status.st_ino) == file.inode { unlink(path) }
        }
    }

    private func acceptAll() {
        while active {
            // Close-on-exec from the start: no child can inherit a client connection.
            let client: Int32
            do {
                guard let accepted = try SystemCall.nonBlocking("accept4", {
                    accept4(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
                }) else { return }
                client = accepted
            } catch where error.errno == ECONNABORTED {
                continue
            } catch where error.errno == EMFILE || error.errno == ENFILE {
                // Out of descriptors: stop watching for 100 ms instead of spinning on the event.
                loop.modify(fd, events: 0)
                let loop = self.loop, me = LoopBound(self, on: loop.thread)
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) {
                    loop.execute {
                        let listener = me.value
                        if listener.active { loop.modify(listener.fd, events: EPOLLIN.rawValue) }
                    }
                }
                return
            } catch {
                return
            }
            guard let core else {
                Glibc.close(client)
                return
            }
            if case .unix = address { core.accepted(client, unix: true, tls: nil) } else { core.accepted(client, unix: false, tls: tls) }
        }
    }
}
