import Foundation

/// Threads for blocking exchanges, kept for reuse: a refresh wave runs on a few long-lived
/// threads instead of creating and tearing down one thread per request. A job never waits for a
/// busy thread (a new one is started when none is idle), so one slow gateway answer never delays
/// another request; a thread idle for `idleSeconds` exits, so a quiet daemon holds none.
///
/// `@unchecked Sendable`: `jobs` and `idle` are touched only with `lock` held. The pool owns its
/// mutex and condition variable and destroys them on deinit.
final class ExchangeThreads: @unchecked Sendable {
    /// The pool every transport shares.
    static let shared = ExchangeThreads(idleSeconds: 5)

    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let idleSeconds: Double
    private var jobs: [@Sendable () -> Void] = []
    private var idle = 0

    init(idleSeconds: Double) {
        self.idleSeconds = idleSeconds
        pthread_mutex_init(lock, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(wake, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(lock)
        wake.deallocate()
        lock.deallocate()
    }

    /// Runs `job` on an idle thread of the pool, or on a new one when none is idle.
    func run(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(lock)
        jobs.append(job)
        let enoughIdle = idle >= jobs.count
        if enoughIdle { pthread_cond_signal(wake) }
        pthread_mutex_unlock(lock)
        if !enoughIdle { Thread.detachNewThread { self.work() } }
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
    var idleCount: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return idle
    }

    private func work() {
        pthread_mutex_lock(lock)
        while true {
            if !jobs.isEmpty {
                let job = jobs.removeFirst()
                pthread_mutex_unlock(lock)
                job()
                pthread_mutex_lock(lock)
                continue
            }
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            var until = timespec(tv_sec: now.tv_sec + Int(idleSeconds), tv_nsec: now.tv_nsec)
            until.tv_nsec += Int((idleSeconds - idleSeconds.rounded(.down)) * 1e9)
            if until.tv_nsec >= 1_000_000_000 {
                until.tv_sec += 1
                until.tv_nsec -= 1_000_000_000
            }
            idle += 1
            let result = pthread_cond_timedwait(wake, lock, &until)
            idle -= 1
            if result == ETIMEDOUT && jobs.isEmpty {
                pthread_mutex_unlock(lock)
                return
            }
        }
    }
}
