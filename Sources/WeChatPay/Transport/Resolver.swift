import FoundationEssentials
import Dispatch
import Glibc
import Synchronization
import SystemCalls

/// Resolves gateway host names within a deadline. `getaddrinfo` cannot be interrupted and a
/// dead DNS server makes it wait for the resolver's own timeouts (5 s × attempts × servers), so
/// a name is looked up on a short-lived thread of its own and the caller waits only until its
/// deadline; a lookup that outlives it finishes in the background and is dropped. IP literals
/// are parsed at once, with no thread and no DNS.
enum Resolver {
    /// One address to connect to: the bytes of its `sockaddr`.
    struct Address: Sendable {
        let bytes: [UInt8]
        var family: Int32 { Int32(bytes.withUnsafeBytes { $0.load(as: sa_family_t.self) }) }

        /// `body` with the address as a `sockaddr` pointer and its length.
        func withSocketAddress<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
            bytes.withUnsafeBytes { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
        }
    }

    /// Lookups abandoned at their caller's deadline and still running: past this many, the
    /// resolver is hanging and new lookups fail at once instead of piling up threads.
    static let maximumPendingLookups = 8
    private static let pending = Mutex(0)

    /// The addresses of `host` (a name or an IP literal) for `port`, before `deadline`
    /// (monotonic seconds).
    static func resolve(_ host: String, port: UInt16, deadline: Double) throws(TransportFailure) -> [Address] {
        if let literal = lookUp(host, port: port, numericOnly: true), case .success(let addresses) = literal { return addresses }
        let admitted = pending.withLock { count -> Bool in
            guard count < maximumPendingLookups else { return false }
            count += 1
            return true
        }
        guard admitted else {
            throw TransportFailure(.connect, "cannot resolve \(host): \(maximumPendingLookups) earlier DNS lookups are still hanging", host: host)
        }
        let outcome = LookupOutcome()
        let done = DispatchSemaphore(value: 0)
        DetachedThread.start {
            outcome.set(lookUp(host, port: port, numericOnly: false) ?? .failure("no address"))
            pending.withLock { $0 -= 1 }
            done.signal()
        }
        let remaining = max(0, deadline - MonotonicClock.now())
        guard done.wait(timeout: .now() + remaining) == .success, let result = outcome.value else {
            throw TransportFailure(.connectTimeout, "resolving \(host) timed out after \(formatSeconds(remaining)) (DNS does not answer)", host: host)
        }
        switch result {
        case .success(let addresses): return addresses
        case .failure(let reason): throw TransportFailure(.connect, "cannot resolve \(host): \(reason)", host: host)
        }
    }

    private enum Lookup: Sendable {
        case success([Address])
        case failure(String)
    }

    private final class LookupOutcome: Sendable {
        private let result = Mutex<Lookup?>(nil)
        func set(_ value: Lookup) { result.withLock { $0 = value } }
        var value: Lookup? { result.withLock { $0 } }
    }

    /// `getaddrinfo` itself; nil when `numericOnly` and `host` is not an IP literal.
    private static func lookUp(_ host: String, port: UInt16, numericOnly: Bool) -> Lookup? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (numericOnly ? AI_NUMERICHOST : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            if numericOnly { return nil }
            return .failure(String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            let length = min(Int(current.pointee.ai_addrlen), MemoryLayout<sockaddr_storage>.size)
            addresses.append(Address(bytes: Array(UnsafeRawBufferPointer(start: current.pointee.ai_addr, count: length))))
            entry = current.pointee.ai_next
        }
        return addresses.isEmpty ? .failure("no address") : .success(addresses)
    }

    private static func formatSeconds(_ seconds: Double) -> String {
        seconds >= 10 || seconds.rounded() == seconds ? "\(Int(seconds.rounded())) s" : "\((seconds * 10).rounded() / 10) s"
    }
}
