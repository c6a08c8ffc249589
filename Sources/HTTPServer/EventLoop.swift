import CLinux
import Foundation
import Synchronization
import SystemCalls

/// One thread running `epoll`: descriptor callbacks, work posted from other threads, and a
/// periodic tick, all on that thread, the way nginx runs a worker.
///
/// Why not Dispatch sources: on Linux libdispatch watches descriptors from its manager thread
/// and hands every event to a worker thread, so each request paid several context switches
/// (measured: half of nginx's throughput, with most CPU in the scheduler). Here an event is
/// handled where it is noticed.
///
/// `@unchecked Sendable`: `callbacks` and the tick are touched only on the loop thread;
/// `posted` is behind a `Mutex` because any thread may post.
final class EventLoop: @unchecked Sendable {
    private let epoll: Int32
    private let wake: Int32
    private var callbacks: [Int32: (UInt32) -> Void] = [:]
    private let posted = Mutex<(work: [@Sendable () -> Void], stopping: Bool)>(([], false))
    private let threadID = Mutex<pthread_t?>(nil)
    /// Seconds between ticks while `tickHandler` is set (nil: no tick, the loop sleeps).
    private var tickInterval: Double?
    private var tickHandler: (() -> Void)?
    private var nextTick = Double.infinity

    init(name: String) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(epoll >= 0 && wake >= 0, "\(SystemError.last("epoll_create1/eventfd"))")
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wake))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Whether the caller is on the loop thread.
    var inLoop: Bool {
        guard let id = threadID.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    /// Runs `work` on the loop thread soon. From any thread.
    func execute(_ work: @escaping @Sendable () -> Void) {
        let wasEmpty = posted.withLock { state in
            let empty = state.work.isEmpty
            state.work.append(work)
            return empty
        }
        if wasEmpty { signal() }
    }

    /// Runs `work` on the loop thread and waits for its result (directly when already there).
    func sync<T>(_ work: @escaping () -> T) -> T {
        if inLoop { return work() }
        nonisolated(unsafe) var result: T?
        nonisolated(unsafe) let body = work
        let done = DispatchSemaphore(value: 0)
        execute {
            result = body()
            done.signal()
        }
        done.wait()
        return result!
    }

    /// Stops the thread after the work already posted; closes the epoll descriptors.
    func stop() {
        posted.withLock { $0.stopping = true }
        signal()
    }

    // MARK: Loop thread only

    /// Watches `fd` for `events` (EPOLLIN/EPOLLOUT bits), calling `callback` with what happened.
    func register(_ fd: Int32, events: UInt32, _ callback: @escaping (UInt32) -> Void) {
        callbacks[fd] = callback
        var event = epoll_event(events: events, data: epoll_data_t(fd: fd))
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    func modify(_ fd: Int32, events: UInt32) {
        var event = epoll_event(events: events, data: epoll_data_t(fd: fd))
        epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    /// Stops watching `fd` (before it is closed).
    func unregister(_ fd: Int32) {
        callbacks[fd] = nil
        epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
    }

    /// Calls `handler` every `interval` seconds; nil stops the tick.
    func setTick(_ interval: Double?, _ handler: (() -> Void)?) {
        tickInterval = interval
        tickHandler = handler
        nextTick = interval.map { MonotonicClock.now() + $0 } ?? .infinity
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    private func run() {
        threadID.withLock { $0 = pthread_self() }
        var events = [epoll_event](repeating: epoll_event(), count: 128)
        while true {
            let timeout: Int32 = nextTick.isFinite ? Int32(max(0, min(1000, (nextTick - MonotonicClock.now()) * 1000)).rounded(.up)) : -1
            let count = epoll_wait(epoll, &events, Int32(events.count), timeout)
            if count < 0 && errno != EINTR { break }
            for index in 0..<max(0, Int(count)) {
                let fd = events[index].data.fd
                if fd == wake {
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                    continue
                }
                // The callback (and what it owns) stays alive while it runs, even when it
                // unregisters itself.
                if let callback = callbacks[fd] { callback(events[index].events) }
            }
            let (work, stopping) = posted.withLock { state in
                let taken = state.work
                state.work.removeAll(keepingCapacity: true)
                return (taken, state.stopping)
            }
            for item in work { item() }
            if nextTick.isFinite, MonotonicClock.now() >= nextTick, let tickInterval {
                nextTick = MonotonicClock.now() + tickInterval
                tickHandler?()
            }
            if stopping {
                close(epoll)
                close(wake)
                return
            }
        }
    }
}
