import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 server on non-blocking sockets driven by Dispatch sources: no thread per
/// connection, strict request limits, a timeout that cuts slow clients, a cap on open
/// connections, keep-alive, and responses in request order.
///
/// All state lives on one serial queue; `@unchecked Sendable` because every mutable member is
/// touched only there. The handler runs on that queue and must not block; it answers through
/// the `HTTPResponder` it is given, at once or later, from any thread.
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
    let queue: DispatchQueue
    let handler: Handler
    private var listeners: [ObjectIdentifier: Listener] = [:]
    var connections: [ObjectIdentifier: HTTPConnection] = [:]

    /// A server whose handler is called on a serial queue labelled `label`.
    public init(label: String, configuration: Configuration = Configuration(), handler: @escaping Handler) {
        self.configuration = configuration
        self.handler = handler
        queue = DispatchQueue(label: label)
    }

    /// Starts listening on `address`; returns the TCP port bound (the one asked for, or the free
    /// one picked for port 0), or 0 for a Unix socket.
    @discardableResult
    public func listen(on address: ListenAddress) throws(SystemError) -> UInt16 {
        let fd: Int32
        var port: UInt16 = 0
        switch address {
        case .tcp(let host, let requested): (fd, port) = try ListeningSocket.tcp(host: host, port: requested)
        case .unix(let path, let mode): fd = try ListeningSocket.unix(path: path, mode: mode)
        }
        queue.sync {
            let listener = Listener(fd: fd, address: address, server: self)
            listeners[ObjectIdentifier(listener)] = listener
            listener.start()
        }
        return port
    }

    /// Stops accepting on every listener (new connections are refused); open connections stay.
    public func stopListening() {
        queue.sync {
            for listener in listeners.values { listener.stop() }
            listeners.removeAll()
        }
    }

    /// Stops listening and closes every connection.
    public func shutdown() {
        stopListening()
        queue.sync {
            for connection in connections.values { connection.close() }
        }
    }

    /// Number of open client connections (for tests and metrics).
    public var connectionCount: Int { queue.sync { connections.count } }

    func accepted(_ fd: Int32) {
        guard connections.count < configuration.maximumConnections else {
            Glibc.close(fd)
            return
        }
        let connection = HTTPConnection(fd: fd, server: self)
        connections[ObjectIdentifier(connection)] = connection
        connection.start()
    }

    func closed(_ connection: HTTPConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }
}

/// Answers one request. Call `respond` exactly once, from any thread; later calls are ignored.
public struct HTTPResponder: Sendable {
    let connection: HTTPConnection
    let sequence: UInt64

    public func respond(_ response: HTTPResponse) {
        connection.server.queue.async { connection.send(response, for: sequence) }
    }
}

/// One listening socket and the read source that accepts on it. Confined to the server's queue.
final class Listener: @unchecked Sendable {
    let fd: Int32
    let address: ListenAddress
    unowned let server: HTTPServer
    private var source: DispatchSourceRead?
    private var paused = false

    init(fd: Int32, address: ListenAddress, server: HTTPServer) {
        self.fd = fd
        self.address = address
        self.server = server
    }

    func start() {
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: server.queue)
        let fd = self.fd
        source.setEventHandler { [unowned self] in acceptAll() }
        source.setCancelHandler { Glibc.close(fd) }
        self.source = source
        source.resume()
    }

    func stop() {
        if paused {
            paused = false
            source?.resume()
        }
        source?.cancel()
        source = nil
        if case .unix(let path, _) = address { unlink(path) }
    }

    private func acceptAll() {
        while true {
            let client = accept(fd, nil, nil)
            if client >= 0 {
                // accept4 is not exported to Swift by Glibc; set the flags just after.
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                server.accepted(client)
                continue
            }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EMFILE, ENFILE:
                // Out of descriptors: pause accepting briefly instead of spinning on the event.
                guard let source, !paused else { return }
                paused = true
                source.suspend()
                server.queue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
                    if paused, let source = self.source {
                        paused = false
                        source.resume()
                    }
                }
                return
            default: return
            }
        }
    }
}
