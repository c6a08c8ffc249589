import CLinux
import Glibc
import SystemCalls

/// Gateway exchanges on kept-alive connections, many at once on one event-loop thread: the
/// request is written and the answer read as the sockets allow, so no thread sleeps per request
/// and a refresh loop of signs, answers and their handling runs where the answers arrive, the
/// way `refresh-floor` does. (A thread per exchange woke and slept once per refresh, and on a
/// VM each wake-up costs as much as the rest of the handling.)
///
/// Only what never blocks runs here: connections are made, TLS handshakes done and failovers
/// tried by `HTTPTransport.sendBlocking` on `ExchangeThreads`, which leave their connections in
/// the pool this loop takes them from.
///
/// The exchanges in flight are loop-thread state (`LoopBound`); `exchange` is called on the
/// loop's thread only (inside `loop.execute`).
final class GatewayLoop: Sendable {
    /// The loop every transport shares; its thread starts with the first exchange.
    static let shared = GatewayLoop()

    /// How often deadlines are checked while exchanges are in flight: a timed-out exchange
    /// ends at most this late.
    static let deadlineCheckSeconds = 0.05

    /// Bytes one exchange reads before the loop turns to the others (and its deadline is
    /// checked): a gateway that streams without end holds the loop no longer than this.
    static let bytesPerTurn = 64 * 1024

    let loop = EventLoop(name: "gw-loop")
    private let flights: LoopBound<Flights>

    /// What happened to one exchange.
    enum Outcome {
        case answer(GatewayAnswer, reusable: Bool)
        case failure(TransportFailure)
    }

    private final class Flights {
        var byDescriptor: [Int32: Flight] = [:]
    }

    /// One request on its way out and its answer on its way in.
    private final class Flight {
        let connection: GatewayConnection
        let request: [UInt8]
        var written = 0
        var received: [UInt8] = []
        let deadline: Double
        let maximumBodyBytes: Int
        let completion: (Outcome) -> Void
        /// The epoll events it is registered for (0: not registered).
        var events: UInt32 = 0

        init(connection: GatewayConnection, request: [UInt8], deadline: Double, maximumBodyBytes: Int, completion: @escaping (Outcome) -> Void) {
            self.connection = connection
            self.request = request
            self.deadline = deadline
            self.maximumBodyBytes = maximumBodyBytes
            self.completion = completion
        }
    }

    private init() {
        flights = LoopBound(Flights(), on: loop.thread)
    }

    /// Sends `request` on `connection` and reads its answer, by `deadline`. Loop thread only.
    /// `completion` runs on the loop thread; the connection is the caller's again then (to
    /// pool when the answer says it is reusable, to drop otherwise).
    func exchange(_ request: [UInt8], on connection: GatewayConnection, deadline: Double, maximumBodyBytes: Int,
                  completion: @escaping (Outcome) -> Void) {
        advance(Flight(connection: connection, request: request, deadline: deadline, maximumBodyBytes: maximumBodyBytes, completion: completion))
    }

    /// Moves `flight` as far as its socket allows: the rest of the request, then the answer.
    private func advance(_ flight: Flight) {
        let connection = flight.connection
        do throws(TransportFailure) {
            while flight.written < flight.request.count {
                switch try connection.sendSome(flight.request, from: flight.written) {
                case .moved(let count): flight.written += count
                case .blocked(let events): return watch(flight, for: events)
                case .ended: throw TransportFailure(.exchange, "connection closed", host: connection.host)
                }
            }
            var readThisTurn = 0
            while true {
                switch try connection.receiveSome(into: &flight.received) {
                case .moved(let count):
                    if let answer = ReceivedAnswer.parse(flight.received, ended: false, host: connection.host, maximumBodyBytes: flight.maximumBodyBytes) {
                        return finish(flight, answer)
                    }
                    guard flight.received.count <= ReceivedAnswer.maximumBytes(body: flight.maximumBodyBytes) else {
                        var failure = TransportFailure(.oversized, "answer still incomplete after \(flight.received.count) bytes (a body is at most \(flight.maximumBodyBytes))",
                                                       host: connection.host)
                        failure.answerBegan = true
                        throw failure
                    }
                    readThisTurn += count
                    // Level-triggered: a socket with more to read calls back on the next turn.
                    if readThisTurn >= Self.bytesPerTurn { return watch(flight, for: Int16(POLLIN)) }
                case .blocked(let events): return watch(flight, for: events)
                case .ended:
                    return finish(flight, ReceivedAnswer.parse(flight.received, ended: true, host: connection.host, maximumBodyBytes: flight.maximumBodyBytes)!)
                }
            }
        } catch {
            var failure = error
            failure.answerBegan = failure.answerBegan || !flight.received.isEmpty
            finish(flight, .failure(failure))
        }
    }

    private func finish(_ flight: Flight, _ result: Result<(answer: GatewayAnswer, reusable: Bool), TransportFailure>) {
        switch result {
        case .success(let answer): finish(flight, .answer(answer.answer, reusable: answer.reusable))
        case .failure(let failure): finish(flight, .failure(failure))
        }
    }

    private func finish(_ flight: Flight, _ outcome: Outcome) {
        let flights = flights.value
        if flight.events != 0 {
            loop.unregister(flight.connection.descriptor)
            flights.byDescriptor[flight.connection.descriptor] = nil
            if flights.byDescriptor.isEmpty { loop.setTick(nil, nil) }
        }
        flight.completion(outcome)
    }

    /// Waits for `events` (`poll` bits) on `flight`'s socket, then advances it.
    private func watch(_ flight: Flight, for events: Int16) {
        let wanted = (events & Int16(POLLIN) != 0 ? EPOLLIN.rawValue : 0) | (events & Int16(POLLOUT) != 0 ? EPOLLOUT.rawValue : 0)
        let fd = flight.connection.descriptor
        if flight.events == 0 {
            let flights = flights.value
            if flights.byDescriptor.isEmpty { loop.setTick(Self.deadlineCheckSeconds) { [self] in expire() } }
            flights.byDescriptor[fd] = flight
            loop.register(fd, events: wanted) { [self] _ in advance(flight) }
        } else if flight.events != wanted {
            loop.modify(fd, events: wanted)
        }
        flight.events = wanted
    }

    /// Ends every exchange past its deadline, after reading what has arrived for it (the loop
    /// may have been busy while its answer came).
    private func expire() {
        let now = MonotonicClock.now()
        for flight in flights.value.byDescriptor.values where flight.deadline <= now {
            advance(flight)
            guard flights.value.byDescriptor[flight.connection.descriptor] === flight else { continue }
            var failure = TransportFailure(.timeout, "timed out", host: flight.connection.host)
            failure.answerBegan = !flight.received.isEmpty
            finish(flight, .failure(failure))
        }
    }
}
