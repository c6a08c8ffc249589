/// A C object that is fully set up before it is shared and never written after: an `EVP_PKEY`
/// (OpenSSL lets one key serve many threads when each operation has its own `EVP_MD_CTX`), a
/// configured `SSL_CTX` (safe to share once configured; each connection gets its own `SSL`), or
/// secret bytes copied in once at creation.
///
/// `@unchecked Sendable`, and the only such wrapper for C objects in the project: the owning
/// class creates the object in `init`, frees it in `deinit` (so the pointer never outlives its
/// owner), and no code writes through it in between; reads from several threads are what the
/// libraries above allow.
public struct SharedCObject<Pointer>: @unchecked Sendable {
    public let pointer: Pointer

    public init(pointer: Pointer) {
        self.pointer = pointer
    }
}
