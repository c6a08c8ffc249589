#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// An OS thread that runs one closure to its end and is never joined: the event loops, slow DNS
/// lookups and hook runs. A pthread directly, so the daemon needs no `Foundation.Thread`.
public enum DetachedThread {
    /// Starts `body` on a new detached thread named `name` (the kernel keeps 15 bytes of it, as
    /// `top -H` and `/proc/PID/task/TID/comm` show). Stops the process if the system cannot make
    /// a thread at all, as `Thread.start` did: every caller's work would otherwise never run.
    public static func start(name: String? = nil, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(name: name, run: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            if let name = body.name { _ = authinfod_name_thread(name) }
            body.run()
            return nil
        }, box)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(box).release()
            fatalError("cannot start a thread: \(SystemError(call: "pthread_create", errno: result))")
        }
    }

    private final class Body {
        let name: String?
        let run: @Sendable () -> Void
        init(name: String?, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }
}
