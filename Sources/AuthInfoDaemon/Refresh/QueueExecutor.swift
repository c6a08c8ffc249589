import Dispatch

/// A serial executor that runs an actor's jobs on one Dispatch queue, so the actor's state and
/// the Dispatch timers armed on that queue share one thread of control: a timer's handler and a
/// block sent with `Refresher.onQueue` may enter the actor with `assumeIsolated`, which
/// `checkIsolated` proves at run time (and traps if it is not so).
final class QueueExecutor: SerialExecutor {
    let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }

    func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }
}
