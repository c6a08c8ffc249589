import CLinux

/// How the daemon's allocator hands memory back, set once before any thread starts.
enum MemoryPolicy {
    /// Blocks of this size or more are mapped on their own and unmapped when freed.
    static let mapThreshold: Int32 = 128 * 1024

    /// Fixes glibc's threshold for mapping a block on its own. Left alone, glibc raises it to
    /// the size of each large block freed (up to 32 MB): after one status answer or metrics
    /// scrape of 10,000 devices, every later array of a few megabytes would come from the heap
    /// and stay resident once freed (measured: 1.2 to 1.8 MB more at rest at 10,000 devices).
    /// Setting it also keeps the heap's trim threshold at its default (128 KB) instead of
    /// following the map threshold up.
    static func apply() {
        if mallopt(M_MMAP_THRESHOLD, mapThreshold) != 1 {
            writeError("warning: cannot fix the allocator's map threshold (mallopt); memory at rest may stay above what the cache needs")
        }
    }
}
