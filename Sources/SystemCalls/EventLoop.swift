import CLinux
import FoundationEssentials
import Glibc
import Dispatch
import Synchronization

/// One thread running `epoll`: descriptor callbacks, work posted from other threads, and a
/// periodic tick, all on that thread, the way nginx runs a worker.
///
/// Why not Dispatch sources: on Linux libdispatch watches descriptors from its manager thread
/// and hands every event to a worker thread, so each request paid several context switches
/// (measured: half of nginx's throughput, with most CPU in the scheduler). Here an event is
/// handled where it is noticed.
///
/// Descriptor callbacks and the tick are loop-thread state (`LoopBound`); `posted` is behind a
/// `Mutex` because any thread may post.
public final class EventLoop: Sendable {
    /// What only the loop's thread touches.
    private final class Local {
        /// Indexed by descriptor (a lookup per event without hashing); grown as descriptors are.
        var callbacks: [((UInt32) -> Void)?] = []
        /// Seconds between ticks while `tickHandler` is set (nil: no tick, the loop sleeps).
        var tickInterval: Double?
        var tickHandler: (() -> Void)?
        var nextTick = Double.infinity
    }

    private let epoll: Int32
    private let wake: Int32
    private let posted = Mutex<(work: [@Sendable () -> Void], stopping: Bool)>(([], false))
    public let thread = LoopThread()
    private let local: LoopBound<Local>

    public init(name: String) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(epoll >= 0 && wake >= 0, "\(SystemError.last("epoll_create1/eventfd"))")
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wake))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
        local = LoopBound(Local(), on: thread)
        DetachedThread.start(name: name) { [self] in run() }
    }

    /// Whether the caller is on the loop thread.
    public var inLoop: Bool { thread.isCurrent }

    /// Runs `work` on the loop thread soon. From any thread; from the loop's own, without a
    /// wake-up (the loop does not sleep while work is posted).
    public func execute(_ work: @escaping @Sendable () -> Void) {
        let wasEmpty = posted.withLock { state in
            let empty = state.work.isEmpty
            state.work.append(work)
            return empty
        }
        if wasEmpty && !inLoop { signal() }
    }

    /// Runs `work` on the loop thread and waits for its result (directly when already there).
    public func sync<T: Sendable>(_ work: @escaping @Sendable () -> T) -> T {
        if inLoop { return work() }
        let result = SyncResult<T>()
        execute {
            result.value.withLock { $0 = work() }
            result.done.signal()
        }
        result.done.wait()
        return result.value.withLock { $0! }
    }

    private final class SyncResult<T: Sendable>: Sendable {
        let value = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
    }

    /// Stops the thread after the work already posted; closes the epoll descriptors.
    public func stop() {
        posted.withLock { $0.stopping = true }
        signal()
    }

    // MARK: Loop thread only

    /// Watches `fd` for `events` (EPOLLIN/EPOLLOUT bits), calling `callback` with what happened.
    public func register(_ fd: Int32, events: UInt32, _ callback: @escaping (UInt32) -> Void) {
        let local = local.value
        if Int(fd) >= local.callbacks.count { local.callbacks += Array(repeating: nil, count: max(64, Int(fd) + 1 - local.callbacks.count)) }
        local.callbacks[Int(fd)] = callback
        var event = epoll_event(events: events, data: epoll_data_t(fd: fd))
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    public func modify(_ fd: Int32, events: UInt32) {
        var event = epoll_event(events: events, data: epoll_data_t(fd: fd))
        epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    /// Stops watching `fd` (before it is closed).
    public func unregister(_ fd: Int32) {
        let local = local.value
        if Int(fd) < local.callbacks.count { local.callbacks[Int(fd)] = nil }
        epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
    }

    /// Calls `handler` every `interval` seconds; nil stops the tick.
    public func setTick(_ interval: Double?, _ handler: (() -> Void)?) {
        let local = local.value
        local.tickInterval = interval
        local.tickHandler = handler
        local.nextTick = interval.map { MonotonicClock.coarse() + $0 } ?? .infinity
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    private func run() {
        thread.claim()
        let local = local.value
        var events = [epoll_event](repeating: epoll_event(), count: 128)
        while true {
            let waiting = posted.withLock { !$0.work.isEmpty }
            let timeout: Int32 = waiting ? 0
                : local.nextTick.isFinite ? Int32(max(0, min(1000, (local.nextTick - MonotonicClock.coarse()) * 1000)).rounded(.up)) : -1
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
                if Int(fd) < local.callbacks.count, let callback = local.callbacks[Int(fd)] { callback(events[index].events) }
            }
            // Taken by swapping, so an empty queue costs no allocation.
            let (work, stopping) = posted.withLock { state in
                var taken: [@Sendable () -> Void] = []
                if !state.work.isEmpty { swap(&taken, &state.work) }
                return (taken, state.stopping)
            }
            for item in work { item() }
            if local.nextTick.isFinite, MonotonicClock.coarse() >= local.nextTick, let tickInterval = local.tickInterval {
                local.nextTick = MonotonicClock.coarse() + tickInterval
                local.tickHandler?()
            }
            if stopping {
                close(epoll)
                close(wake)
                return
            }
        }
    }
}
