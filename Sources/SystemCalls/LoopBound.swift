#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The thread an event loop runs on, for `LoopBound`'s check.
public final class LoopThread: Sendable {
    private let id = Mutex<pthread_t?>(nil)

    /// Called once, first thing on the loop's thread.
    public func claim() { id.withLock { $0 = pthread_self() } }

    public var isCurrent: Bool {
        guard let owner = id.withLock({ $0 }) else { return false }
        return pthread_equal(owner, pthread_self()) != 0
    }
}

/// An object that lives on one event loop's thread: it may be carried to other threads (inside
/// work posted back to the loop, in an `HTTPResponder`), but it is used only on its own thread.
///
/// `@unchecked Sendable`, and the only such type in the HTTP server: every access goes through
/// `value`, which asserts (in debug builds, where the tests run) that the caller is on the loop's
/// thread, so the object is never touched by two threads; its users reach it only inside
/// work the loop runs (`EventLoop.execute`, `sync`, its callbacks and tick).
public struct LoopBound<Value: AnyObject>: @unchecked Sendable {
    public let thread: LoopThread
    private let object: Value

    public init(_ object: Value, on thread: LoopThread) {
        self.object = object
        self.thread = thread
    }

    /// The object, on the loop's thread only.
    public var value: Value {
        assert(thread.isCurrent, "\(Value.self) used off its event loop's thread")
        return object
    }
}
