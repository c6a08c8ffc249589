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
/// All state lives on the loop thread; `@unchecked Sendable` because every mutable member is
/// touched only there. The handler runs on that thread and must not block; it answers through
/// the `HTTPResponder` it is given: `respondNow` before returning, or `respond` later from any
/// thread.
public final class HTTPServer: @unchecked Sendable {
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

    let configuration: Configuration
    let loop: EventLoop
    let handler: Handler
    private var listeners: [ObjectIdentifier: Listener] = [:]
    var connections: [ObjectIdentifier: HTTPConnection] = [:]
    /// One read buffer for every connection: they all read on the loop thread, one at a time.
    var readBuffer = [UInt8](repeating: 0, count: 16384)

    /// A server whose handler runs on a loop thread named `label`.
    public init(label: String, configuration: Configuration = Configuration(), handler: @escaping Handler) {
        self.configuration = configuration
        self.handler = handler
        loop = EventLoop(name: label)
    }

    deinit {
        let listeners = self.listeners, connections = self.connections, loop = self.loop
        loop.sync {
            for listener in listeners.values { listener.stop(on: loop) }
            for connection in connections.values { connection.close() }
        }
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
        return loop.sync {
            let listener = Listener(socket: socket, address: address, server: self)
            self.listeners[ObjectIdentifier(listener)] = listener
            listener.start(on: self.loop)
            return BoundListener(id: ObjectIdentifier(listener), address: address, port: socket.port)
        }
    }

    /// Stops accepting on `listener` (its Unix socket file is removed while it is still the one
    /// this listener bound); connections it accepted stay open.
    public func stopListening(_ listener: BoundListener) {
        loop.sync {
            self.listeners.removeValue(forKey: listener.id)?.stop(on: self.loop)
        }
    }

    /// Stops accepting on every listener (new connections are refused); open connections stay.
    public func stopListening() {
        loop.sync {
            for listener in self.listeners.values { listener.stop(on: self.loop) }
            self.listeners.removeAll()
        }
    }

    /// Stops listening and closes every connection.
    public func shutdown() {
        stopListening()
        loop.sync {
            for connection in self.connections.values { connection.close() }
        }
    }

    /// Number of open client connections (for tests and metrics).
    public var connectionCount: Int { loop.sync { self.connections.count } }

    func accepted(_ fd: Int32) {
        guard connections.count < configuration.maximumConnections else {
            Glibc.close(fd)
            return
        }
        let connection = HTTPConnection(fd: fd, server: self)
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

    private func sweepConnections() {
        let now = MonotonicClock.now()
        for connection in connections.values where connection.deadline <= now { connection.timedOut() }
    }

}

/// Answers one request. Call it exactly once; later calls are ignored. A handler that answers
/// before returning uses `respondNow`; one that answers later, from any thread, `respond`.
public struct HTTPResponder: Sendable {
    let connection: HTTPConnection
    let sequence: UInt64

    public func respond(_ response: HTTPResponse) {
        connection.server.loop.execute { connection.send(response, for: sequence) }
    }

    /// Closes the connection without answering (the simulator's lost connection).
    public func hangUp() {
        connection.server.loop.execute { connection.hangUp(for: sequence) }
    }

    /// Answers synchronously. Only from inside the handler, on the server's loop thread.
    public func respondNow(_ response: HTTPResponse) {
        precondition(connection.server.loop.inLoop, "respondNow outside the server's loop thread")
        connection.send(response, for: sequence)
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

/// One listening socket, watched by the loop. Confined to the loop thread.
final class Listener: @unchecked Sendable {
    let fd: Int32
    let address: ListenAddress
    /// The socket file's identity, for a Unix socket: removed at stop only while the path still
    /// names this file (a reload may have bound a new socket there since).
    private let file: (device: UInt64, inode: UInt64)?
    /// Weak: the server owns its listeners and stops them before it goes.
    private weak var server: HTTPServer?
    private var active = false

    init(socket: ListeningSocket.Bound, address: ListenAddress, server: HTTPServer) {
        fd = socket.fd
        file = socket.file
        self.address = address
        self.server = server
    }

    /// Watches the socket; the loop owns the listener until `stop()` unregisters it.
    func start(on loop: EventLoop) {
        active = true
        loop.register(fd, events: EPOLLIN.rawValue) { [self] _ in acceptAll(loop) }
    }

    func stop(on loop: EventLoop) {
        guard active else { return }
        active = false
        loop.unregister(fd)
        Glibc.close(fd)
        if case .unix(let path, _) = address, let file {
            var status = stat()
            if lstat(path, &status) == 0, UInt64(status.st_dev) == file.device, UInt64(status.st_ino) == file.inode { unlink(path) }
        }
    }

    private func acceptAll(_ loop: EventLoop) {
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
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
                    loop.execute { if self.active { loop.modify(self.fd, events: EPOLLIN.rawValue) } }
                }
                return
            } catch {
                return
            }
            guard let server else {
                Glibc.close(client)
                return
            }
            server.accepted(client)
        }
    }
}
