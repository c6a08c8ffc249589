import Dispatch
import Testing
import SystemCalls

@Suite struct EventLoopTests {
    /// Work posted from the loop's own thread wakes nothing (no eventfd write) and must still
    /// run at once, not wait for the next event: the loop does not sleep while work is posted.
    @Test func workPostedFromTheLoopRunsWithoutAnotherEvent() {
        let loop = EventLoop(name: "test-loop")
        defer { loop.stop() }
        let done = DispatchSemaphore(value: 0)
        loop.execute {
            #expect(loop.inLoop)
            loop.execute {
                loop.execute { done.signal() }
            }
        }
        #expect(done.wait(timeout: .now() + 2) == .success)
    }
}
