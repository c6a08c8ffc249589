import FoundationEssentials
import Glibc
import SystemCalls
import Dispatch
import Synchronization

/// Threads for blocking exchanges, kept for reuse: a refresh wave runs on a few long-lived
/// threads instead of creating and tearing down one thread per request. A job never waits for a
/// busy thread (a new one is started when none is idle), so one slow gateway answer never delays
/// another request; a thread idle for `idleSeconds` exits, so a quiet daemon holds none.
///
/// The queue of jobs and the idle threads' wake-up semaphores are behind one `Mutex`; a thread
/// registers itself idle in the same critical section in which it finds no job, so no job is
/// ever left without a thread.
final class ExchangeThreads: Sendable {
    /// The pool every transport shares.
    static let shared = ExchangeThreads(idleSeconds: 5)

    private struct State {
        var jobs: [@Sendable () -> Void] = []
        /// One semaphore per idle thread, signalled to hand it a job.
        var idle: [DispatchSemaphore] = []
    }

    private let idleSeconds: Double
    private let state = Mutex(State())

    init(idleSeconds: Double) {
        self.idleSeconds = idleSeconds
    }

    /// Runs `job` on an idle thread of the pool, or on a new one when none is idle.
    func run(_ job: @escaping @Sendable () -> Void) {
        let idle = state.withLock { state in
            state.jobs.append(job)
            return state.idle.popLast()
        }
        if let idle { idle.signal() } else { DetachedThread.start(name: "gw-exchange") { self.work() } }
    }

    /// Runs `body` on a thread of the pool and returns what it returned or threw, without
    /// holding the caller's thread meanwhile.
    func result<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, E>, Never>) in
            run { continuation.resume(returning: Result { () throws(E) in try body() }) }
        }
        return try result.get()
    }

    /// Threads alive but waiting for work (tests).
    var idleCount: Int { state.withLock { $0.idle.count } }

    private func work() {
        let wake = DispatchSemaphore(value: 0)
        while true {
            let job = state.withLock { state -> (@Sendable () -> Void)? in
                if !state.jobs.isEmpty { return state.jobs.removeFirst() }
                state.idle.append(wake)
                return nil
            }
            if let job {
                job()
                continue
            }
            guard wake.wait(timeout: .now() + idleSeconds) == .timedOut else { continue }
            let leaving = state.withLock { state -> Bool in
                guard let index = state.idle.firstIndex(where: { $0 === wake }) else { return false }
                state.idle.remove(at: index)
                return true
            }
            if leaving { return }
            // A job took this thread just as it timed out: take the signal that hands it over.
            wake.wait()
        }
    }
}
