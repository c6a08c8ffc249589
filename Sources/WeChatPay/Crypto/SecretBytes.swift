import SystemCalls
import COpenSSL

/// Key material that is zeroed when released (the APIv3 key, bearer tokens).
///
/// Immutable after creation; the bytes live in memory owned by this object alone, so copies of
/// the secret do not spread through value semantics (see `SharedCObject`).
public final class SecretBytes: Sendable {
    private let handle: SharedCObject<UnsafeMutableRawBufferPointer>
    private var storage: UnsafeMutableRawBufferPointer { handle.pointer }

    public init(_ bytes: some Collection<UInt8>) {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        storage.copyBytes(from: bytes)
        handle = SharedCObject(pointer: storage)
        count = bytes.count
    }

    public let count: Int

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    /// Calls `body` with the secret's bytes; they must not escape it.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// Compares with `other` in time that depends only on the lengths, never on where they differ.
    public func constantTimeEquals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard other.count == count else { return false }
        return withUnsafeBytes { mine in CRYPTO_memcmp(mine.baseAddress, other.baseAddress, count) == 0 }
    }

    /// `constantTimeEquals` for bytes in an array.
    public func constantTimeEquals(_ other: [UInt8]) -> Bool {
        other.withUnsafeBytes { constantTimeEquals($0) }
    }
}
