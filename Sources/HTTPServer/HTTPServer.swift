import CLinux
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
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
        /// Open connections at most; further ones are closed as soon as they are accepted.
        public var maximumConnections = 1024

        public init() {}
    }

    public typealias Handler = @Sendable (HTTPRequest, HTTPResponder) -> Void

    let loop: EventLoop
    private let core: LoopBound<ServerCore>

    /// A server whose handler runs on a loop thread named `label`.
    public init(label: String, configuration: Configuration = Configuration(), handler: @escaping Handler) {
        loop = EventLoop(name: label)
        core = LoopBound(ServerCore(configuration: configuration, handler: handler, loop: loop), on: loop.thread)
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
    public func listen(on address: ListenAddress) throws(SystemError) -> BoundListener {
        let socket: ListeningSocket.Bound
        switch address {
        case .tcp(let host, let requested): socket = try ListeningSocket.tcp(host: host, port: requested)
        case .unix(let path, let mode): socket = try ListeningSocket.unix(path: path, mode: mode)
        }
        let core = self.core
        return loop.sync { core.value.listen(socket, address: address) }
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

    /// Number of open client connections (for tests and metrics).
    public var connectionCount: Int {
        let core = self.core
        return loop.sync { core.value.connections.count }
    }
}

/// What a server holds on its loop thread: listeners, connections, the shared read buffer.
final class ServerCore {
    let configuration: HTTPServer.Configuration
    let handler: HTTPServer.Handler
    let loop: EventLoop
    private var listeners: [ObjectIdentifier: Listener] = [:]
    private(set) var connections: [ObjectIdentifier: HTTPConnection] = [:]
    /// One read buffer for every connection: they all read on the loop thread, one at a time.
    var readBuffer = [UInt8](repeating: 0, count: 16384)

    init(configuration: HTTPServer.Configuration, handler: @escaping HTTPServer.Handler, loop: EventLoop) {
        self.configuration = configuration
        self.handler = handler
        self.loop = loop
    }

    func listen(_ socket: ListeningSocket.Bound, address: ListenAddress) -> BoundListener {
        let listener = Listener(socket: socket, address: address, core: self)
        listeners[ObjectIdentifier(listener)] = listener
        listener.start()
        return BoundListener(id: ObjectIdentifier(listener), address: address, port: socket.port)
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

    func accepted(_ fd: Int32) {
        guard connections.count < configuration.maximumConnections else {
            Glibc.close(fd)
            return
        }
        let connection = HTTPConnection(fd: fd, core: self, peer: Self.peer(of: fd))
        connections[ObjectIdentifier(connection)] = connection
        connection.start()
        if connections.count == 1 {
            // Deadlines are checked by a tick that runs only while connections are open, so an
            // idle server wakes nobody and a request costs no timer syscalls.
            loop.setTick(max(0.05, min(1, configuration.requestTimeout / 4))) { [weak self] in self?.sweepConnections() }
        }
    }

    func closed(_ connection: HTTPConnection) {
        connections[ObjectIdentifier(connection)] = nil
        if connections.isEmpty { loop.setTick(nil, nil) }
    }

    /// `address:port` of a TCP client (`[v6]:port`), or `unix`.
    static func peer(of fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) } }
        guard status == 0 else { return "unknown" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(storage.ss_family) {
        case AF_INET:
            var address = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }
            inet_ntop(AF_INET, &address.sin_addr, &text, socklen_t(text.count))
            return "\(String(cString: text)):\(UInt16(bigEndian: address.sin_port))"
        case AF_INET6:
            var address = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
            inet_ntop(AF_INET6, &address.sin6_addr, &text, socklen_t(text.count))
            return "[\(String(cString: text))]:\(UInt16(bigEndian: address.sin6_port))"
        default:
            return "unix"
        }
    }

    private func sweepConnections() {
        let now = MonotonicClock.now()
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
            core.accepted(client)
        }
    }
}
