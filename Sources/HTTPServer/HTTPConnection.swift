import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One client connection: reads and parses requests, hands each to the server's handler, and
/// writes the responses back in order. Confined to the server's queue (hence `@unchecked
/// Sendable`). The descriptor is closed exactly once, when the last of its sources is cancelled.
final class HTTPConnection: @unchecked Sendable {
    let server: HTTPServer
    private let fd: Int32
    private var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    private var timer: DispatchSourceTimer?
    private var readSuspended = false
    private var writeSuspended = true
    private var liveSources = 0

    private var input: [UInt8] = []
    private var scanned = 0
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// The request being handled, if any; responses to anything else are ignored.
    private var pending: UInt64?
    private var sequence: UInt64 = 0
    private var closeAfterWrite = false
    private var closed = false

    init(fd: Int32, server: HTTPServer) {
        self.fd = fd
        self.server = server
    }

    func start() {
        var noSigPipe: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &noSigPipe, socklen_t(MemoryLayout<Int32>.size))
        let read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: server.queue)
        read.setEventHandler { [unowned self] in readAvailable() }
        read.setCancelHandler { [self] in sourceCancelled() }
        readSource = read
        liveSources += 1
        let timer = DispatchSource.makeTimerSource(queue: server.queue)
        timer.setEventHandler { [unowned self] in timedOut() }
        self.timer = timer
        armTimer()
        timer.resume()
        read.resume()
    }

    // MARK: Reading

    private func readAvailable() {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while !closed {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                input.append(contentsOf: chunk[0..<count])
                if input.count > server.configuration.limits.maximumHeaderBytes + server.configuration.limits.maximumBodyBytes + 8192 {
                    break
                }
                continue
            }
            if count == 0 {
                // The client closed its side; finish nothing more for it.
                close()
                return
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { break }
            close()
            return
        }
        processInput()
    }

    /// Parses and dispatches the next request when none is being handled.
    private func processInput() {
        guard !closed, pending == nil, !closeAfterWrite, !input.isEmpty else {
            updateReading()
            return
        }
        switch HTTPRequestParser.parse(input[...], scanFrom: scanned, limits: server.configuration.limits) {
        case .incomplete(let scannedSoFar):
            scanned = scannedSoFar
        case .invalid(let status, _):
            input.removeAll()
            closeAfterWrite = true
            sequence += 1
            pending = sequence
            send(.error(status, status == 431 ? "headers_too_large" : status == 413 ? "body_too_large" : "bad_request"), for: sequence)
        case .request(let request, let consumed):
            input.removeFirst(consumed)
            scanned = 0
            sequence += 1
            pending = sequence
            if !request.keepAlive { closeAfterWrite = true }
            disarmTimer()
            server.handler(request, HTTPResponder(connection: self, sequence: sequence))
        }
        updateReading()
    }

    /// Reads only while no request is being handled and the buffer is within bounds
    /// (backpressure against pipelining floods).
    private func updateReading() {
        guard let readSource, !closed else { return }
        let shouldRead = pending == nil && !closeAfterWrite
        if shouldRead && readSuspended {
            readSuspended = false
            readSource.resume()
        } else if !shouldRead && !readSuspended {
            readSuspended = true
            readSource.suspend()
        }
    }

    // MARK: Writing

    func send(_ response: HTTPResponse, for requestSequence: UInt64) {
        guard !closed, pending == requestSequence else { return }
        pending = nil
        output += response.serialized(close: closeAfterWrite)
        armTimer()
        flush()
    }

    private func flush() {
        while outputOffset < output.count {
            let count = output.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + outputOffset, raw.count - outputOffset, Int32(MSG_NOSIGNAL))
            }
            if count >= 0 {
                outputOffset += count
                continue
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                waitForWritable()
                return
            }
            close()
            return
        }
        output.removeAll(keepingCapacity: true)
        outputOffset = 0
        if let writeSource, !writeSuspended {
            writeSuspended = true
            writeSource.suspend()
        }
        if closeAfterWrite {
            close()
        } else {
            processInput()
        }
    }

    private func waitForWritable() {
        if writeSource == nil {
            let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: server.queue)
            source.setEventHandler { [unowned self] in flush() }
            source.setCancelHandler { [self] in sourceCancelled() }
            writeSource = source
            liveSources += 1
        }
        if writeSuspended {
            writeSuspended = false
            writeSource?.resume()
        }
    }

    // MARK: Timeout and closing

    private func armTimer() {
        timer?.schedule(deadline: .now() + server.configuration.requestTimeout, repeating: .never)
    }

    private func disarmTimer() {
        timer?.schedule(deadline: .distantFuture, repeating: .never)
    }

    private func timedOut() {
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

    /// Cancels every source; the descriptor is closed when the last cancellation lands.
    func close() {
        guard !closed else { return }
        closed = true
        timer?.cancel()
        if let readSource {
            if readSuspended { readSource.resume() }
            readSource.cancel()
        }
        if let writeSource {
            if writeSuspended { writeSource.resume() }
            writeSource.cancel()
        }
        server.closed(self)
    }

    private func sourceCancelled() {
        liveSources -= 1
        if liveSources == 0 {
            Glibc.close(fd)
            readSource = nil
            writeSource = nil
            timer = nil
        }
    }
}
