import CLinux
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import SystemCalls

/// One client connection: reads and parses requests, hands each to the server's handler, and
/// writes the responses back in order. Lives on the server's loop thread (an `HTTPResponder`
/// carries it elsewhere only as a `LoopBound`). The descriptor is unregistered and closed
/// exactly once, in `close()`.
final class HTTPConnection {
    /// Strong: the core drops its connection at `close()`, which breaks the cycle.
    let core: ServerCore
    private let fd: Int32
    /// The epoll events currently asked for (EPOLLIN while reading, EPOLLOUT while output waits).
    private var watched: UInt32 = 0
    /// Monotonic time by which the client must have sent its request (or taken our response);
    /// `.infinity` while the handler works. Checked by the server's sweep, so a request costs
    /// no timer syscalls.
    private(set) var deadline = Double.infinity

    private var input: [UInt8] = []
    private var scanned = 0
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// The request being handled, if any; responses to anything else are ignored.
    private var pending: UInt64?
    private var sequence: UInt64 = 0
    private var closeAfterWrite = false
    private var closed = false
    /// Set while `processInput` runs, so a response sent synchronously from the handler does not
    /// re-enter it (the loop there picks up the next pipelined request instead).
    private var processing = false

    /// The client: its address, or its credentials on a Unix socket.
    let peer: Peer
    /// TLS on this connection (the listener has a certificate), nil for plain HTTP.
    private let tls: TLSSession?
    /// Whether the first byte was looked at (a TLS connection must start with a handshake record).
    private var checkedFirstByte = false
    /// A TLS read asked to wait for the socket to become writable (a TLS 1.3 post-handshake message).
    private var tlsWaitsForWritable = false
    /// When bytes last moved either way (monotonic): the connection idle the longest is shed first.
    private(set) var lastActive = MonotonicClock.coarse()

    /// Open, with no request being read or handled and no answer waiting to be sent.
    var isIdle: Bool { !closed && pending == nil && input.isEmpty && unsent == 0 && !closeAfterWrite }

    init(fd: Int32, core: ServerCore, peer: Peer, tls: TLSSession?) {
        self.fd = fd
        self.core = core
        self.peer = peer
        self.tls = tls
    }

    func start() {
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, socklen_t(MemoryLayout<Int32>.size))
        if peer.address != nil {
            // Answers go out as soon as they are written: Nagle would hold a small answer (or a
            // TLS record) back until the client's delayed acknowledgement, up to 40 ms.
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        watched = EPOLLIN.rawValue
        // The loop owns this handler, and through it the connection, until `close()` unregisters
        // it; a connection closed from inside its own handler is kept alive until that returns.
        core.loop.register(fd, events: watched) { [self] events in
            if let tls, !tls.established { return continueHandshake() }
            if tlsWaitsForWritable, events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                tlsWaitsForWritable = false
                readAvailable()
            }
            if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0, !output.isEmpty { flush() }
            if events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0, !closed { readAvailable() }
        }
        armTimer()
    }

    // MARK: TLS handshake

    /// Drives the handshake as the socket allows. A client that speaks plain HTTP to the TLS
    /// port gets a plain 400 saying so, and is closed.
    private func continueHandshake() {
        guard let tls, !closed else { return }
        if !checkedFirstByte {
            var first: UInt8 = 0
            let peeked = recv(fd, &first, 1, Int32(MSG_PEEK))
            if peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
            guard peeked == 1 else { return close() }
            checkedFirstByte = true
            // 0x16: a TLS handshake record.
            guard first == 0x16 else { return refusePlaintext() }
        }
        switch tls.handshake() {
        case .done:
            watch(EPOLLIN.rawValue)
            // The client may have sent its request with its last handshake message.
            readAvailable()
        case .wantRead: watch(EPOLLIN.rawValue)
        case .wantWrite: watch(EPOLLOUT.rawValue)
        case .closed, .failed: close()
        }
    }

    private func refusePlaintext() {
        let answer = Array("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 24\r\nConnection: close\r\n\r\n{\"error\":\"tls_required\"}".utf8)
        _ = answer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close()
    }

    private func watch(_ events: UInt32) {
        guard events != watched, !closed else { return }
        watched = events
        core.loop.modify(fd, events: events)
    }

    // MARK: Reading

    /// Reads what the client sent into `core.readBuffer`: the count, 0 at its end, nil when
    /// nothing is there now.
    private func receive() throws(SystemError) -> Int? {
        guard let tls else {
            return try SystemCall.nonBlocking("recv") { core.readBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
        }
        switch core.readBuffer.withUnsafeMutableBytes({ tls.read(into: $0) }) {
        case .done(let count): return count
        case .wantRead: return nil
        case .wantWrite:
            tlsWaitsForWritable = true
            return nil
        case .closed: return 0
        case .failed: throw SystemError(call: "SSL_read", errno: EPROTO)
        }
    }

    private func readAvailable() {
        while !closed {
            let received: Int?
            do {
                received = try receive()
            } catch {
                close()
                return
            }
            guard let count = received else { break }
            if count > 0 {
                lastActive = MonotonicClock.coarse()
                input.append(contentsOf: core.readBuffer[0..<count])
                // A short read drained the socket: epoll is level-triggered, so skip the recv
                // that would only say EAGAIN (one syscall less per request). Under TLS, only
                // when the session holds nothing more either.
                if count < core.readBuffer.count && !(tls?.hasPending ?? false) { break }
                if input.count > core.configuration.limits.maximumHeaderBytes + core.configuration.limits.maximumBodyBytes + 8192 {
                    break
                }
                continue
            }
            // The client closed its side; finish nothing more for it.
            close()
            return
        }
        processInput()
    }

    /// Parses and dispatches requests while none is being handled (a handler that answers at
    /// once lets the loop continue with the next pipelined request).
    private func processInput() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while !closed, pending == nil, !closeAfterWrite, !input.isEmpty, unsent < Self.maximumUnsentBytes {
            switch HTTPRequestParser.parse(input[...], scanFrom: scanned, limits: core.configuration.limits) {
            case .incomplete(let scannedSoFar):
                scanned = scannedSoFar
                updateReading()
                return
            case .invalid(let status, _):
                input.removeAll()
                closeAfterWrite = true
                sequence += 1
                pending = sequence
                send(.error(status, status == 431 ? "headers_too_large" : status == 413 ? "body_too_large" : "bad_request"), for: sequence)
            case .request(var request, let consumed):
                request.peer = peer.text
                request.credentials = peer.credentials
                if consumed == input.count { input.removeAll(keepingCapacity: true) } else { input.removeFirst(consumed) }
                scanned = 0
                sequence += 1
                pending = sequence
                if !request.keepAlive { closeAfterWrite = true }
                // No deadline while the handler works, unless older answers still wait for the client.
                if unsent == 0 { disarmTimer() }
                core.handler(request, HTTPResponder(loop: core.loop, connection: LoopBound(self, on: core.loop.thread), sequence: sequence))
            }
        }
        updateReading()
    }

    /// Answers not yet taken by the client above which no further pipelined request is read or
    /// handled: a client that sends without reading holds at most this much of the daemon's
    /// memory (plus one answer), and its answers' deadline is no longer renewed.
    static let maximumUnsentBytes = 64 * 1024

    private var unsent: Int { output.count - outputOffset }

    /// Reads only while no request is being handled and the client takes its answers
    /// (backpressure against pipelining floods); watches for writability while output waits.
    private func updateReading() {
        guard !closed else { return }
        var wanted: UInt32 = 0
        if pending == nil && !closeAfterWrite && unsent < Self.maximumUnsentBytes { wanted |= EPOLLIN.rawValue }
        if outputOffset < output.count || tlsWaitsForWritable { wanted |= EPOLLOUT.rawValue }
        if wanted != watched {
            watched = wanted
            core.loop.modify(fd, events: wanted)
        }
        // Bytes the TLS session read ahead are no longer in the socket: epoll will not report
        // them. Read them on the loop's next turn (not from here, which may be deep in a
        // handler's answer).
        if wanted & EPOLLIN.rawValue != 0, !resumeScheduled, tls?.hasPending == true {
            resumeScheduled = true
            let connection = LoopBound(self, on: core.loop.thread)
            core.loop.execute {
                let connection = connection.value
                connection.resumeScheduled = false
                if !connection.closed { connection.readAvailable() }
            }
        }
    }

    /// A read of what the TLS session holds is posted to the loop (see `updateReading`).
    private var resumeScheduled = false

    // MARK: Writing

    /// Closes the connection instead of answering request `requestSequence`.
    func hangUp(for requestSequence: UInt64) {
        guard !closed, pending == requestSequence else { return }
        close()
    }

    func send(_ response: HTTPResponse, for requestSequence: UInt64) {
        guard !closed, pending == requestSequence else { return }
        pending = nil
        // One deadline per stretch of unsent output: it starts when the output was empty and is
        // not renewed while older answers wait, so a client reading a byte at a time is cut.
        if unsent == 0 || deadline == .infinity { armTimer() }
        if outputOffset > 0 && outputOffset * 2 >= output.count {
            // Most of the buffer was sent: drop that part instead of growing it further.
            output.removeFirst(outputOffset)
            outputOffset = 0
        }
        response.write(into: &output, close: closeAfterWrite, date: core.date.now())
        flush()
    }

    private func flush() {
        while outputOffset < output.count {
            let sent: Int?
            do {
                sent = try transmit()
            } catch {
                close()
                return
            }
            guard let count = sent else {
                // The client is not taking more now; below the bound, the next pipelined
                // request may still be handled meanwhile.
                if unsent < Self.maximumUnsentBytes / 2 && !input.isEmpty { processInput() } else { updateReading() }
                return
            }
            outputOffset += count
        }
        lastActive = MonotonicClock.coarse()
        output.removeAll(keepingCapacity: true)
        outputOffset = 0
        if closeAfterWrite {
            close()
        } else {
            processInput()
        }
    }

    /// Sends from `output` at `outputOffset`: the count, nil when the socket takes nothing now.
    private func transmit() throws(SystemError) -> Int? {
        guard let tls else {
            return try SystemCall.nonBlocking("send") {
                output.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + outputOffset, $0.count - outputOffset, Int32(MSG_NOSIGNAL)) }
            }
        }
        switch output.withUnsafeBytes({ tls.write(UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }) {
        case .done(let count): return count
        case .wantWrite, .wantRead: return nil
        case .closed, .failed: throw SystemError(call: "SSL_write", errno: EPIPE)
        }
    }

    // MARK: Timeout and closing

    private func armTimer() {
        deadline = MonotonicClock.coarse() + core.configuration.requestTimeout
    }

    private func disarmTimer() {
        deadline = .infinity
    }

    /// Called by the server's sweep once `deadline` has passed.
    func timedOut() {
        guard !closed else { return }
        if pending == nil && output.isEmpty && !input.isEmpty && !closeAfterWrite {
            // A request started but did not arrive in time: tell the client, then close.
            closeAfterWrite = true
            sequence += 1
            pending = sequence
            send(.error(408, "request_timeout"), for: sequence)
            armTimer()
            return
        }
        close()
    }

    /// Stops watching the descriptor and closes it.
    func close() {
        guard !closed else { return }
        closed = true
        core.loop.unregister(fd)
        tls?.shutdown()
        Glibc.close(fd)
        core.closed(self)
    }
}
