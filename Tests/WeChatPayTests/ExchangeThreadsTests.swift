import Foundation
import Synchronization
import Testing
@testable import WeChatPay

@Suite struct ExchangeThreadsTests {
    /// Eight jobs that each block until all eight are running: finishes only if no job waits
    /// for a busy thread.
    @Test func blockingJobsNeverWaitForABusyThread() {
        let pool = ExchangeThreads(idleSeconds: 1)
        let running = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<8 {
            pool.run {
                running.add(1, ordering: .sequentiallyConsistent)
                let deadline = Date().addingTimeInterval(5)
                while running.load(ordering: .sequentiallyConsistent) < 8 && Date() < deadline { usleep(1000) }
                done.signal()
            }
        }
        for _ in 0..<8 { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(running.load(ordering: .sequentiallyConsistent) == 8)
    }

    @Test func anIdleThreadIsReusedThenExitsAfterItsIdleTime() {
        let pool = ExchangeThreads(idleSeconds: 0.3)
        let threads = Mutex<[pthread_t]>([])
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<5 {
            pool.run {
                threads.withLock { $0.append(pthread_self()) }
                done.signal()
            }
            #expect(done.wait(timeout: .now() + 5) == .success)
            // Let the thread get back to waiting before the next job.
            for _ in 0..<200 where pool.idleCount == 0 { usleep(1000) }
        }
        let seen = threads.withLock { $0 }
        #expect(seen.count == 5)
        #expect(seen.allSatisfy { pthread_equal($0, seen[0]) != 0 })
        #expect(pool.idleCount == 1)
        usleep(800_000)
        #expect(pool.idleCount == 0)
    }
}
