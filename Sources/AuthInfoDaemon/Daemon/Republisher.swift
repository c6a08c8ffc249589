import Dispatch
import Synchronization

/// Republishes every valid value at start on Dispatch's worker threads, while the refresher goes
/// on building what the socket serves: writing 100,000 files and loading 100,000 devices then
/// overlap on every core instead of adding up. READY waits for `finish`, so the contract's
/// "files republished" still holds when it is sent.
///
/// Batches are independent (one device's file each) and may be written at the same time, also by
/// the refresher's thread once its own work is done (`finish`); after the first failure the rest
/// are skipped (the refresher's storage repair rewrites everything anyway).
final class Republisher: Sendable {
    /// What the writing threads have done so far.
    struct Progress: Sendable {
        var written = 0
        var failure: Publisher.Failure?
    }

    /// Devices per batch: large enough that handing one over costs nothing next to its files.
    static let batchSize = 512

    private let publisher: Publisher
    private let present: Set<String>
    /// The folder, held open until the last batch is written; nil when it cannot be opened for
    /// reading (a folder the daemon may write but not list), and then whole paths are used.
    private let folder: Publisher.Folder?
    private let queue = DispatchQueue(label: "authinfod.republish", attributes: .concurrent)
    private let group = DispatchGroup()
    private let progress = Mutex(Progress())
    /// Batches added and not yet taken by a worker (or by `finish`).
    private let pending = Mutex<[[(id: String, document: AuthInfoDocument)]]>([])

    /// `present`: the names `Publisher.listFolder` found (their files are read, and
    /// rewritten only when they differ).
    init(_ publisher: Publisher, present: Set<String>) {
        self.publisher = publisher
        self.present = present
        folder = try? publisher.openFolder()
    }

    /// Queues `batch` (device id, document) for writing; returns at once. Each file holds its
    /// document's published JSON, rendered by the thread that writes it.
    func add(_ batch: [(id: String, document: AuthInfoDocument)]) {
        guard !batch.isEmpty else { return }
        pending.withLock { $0.append(batch) }
        queue.async(group: group) { [self] in
            if let batch = pending.withLock({ $0.popLast() }) { write(batch) }
        }
    }

    /// Waits until every queued batch is written (or skipped after a failure), writing what is
    /// still queued on the calling thread meanwhile.
    func finish() -> Progress {
        while let batch = pending.withLock({ $0.popLast() }) { write(batch) }
        group.wait()
        return progress.withLock { $0 }
    }

    private func write(_ batch: [(id: String, document: AuthInfoDocument)]) {
        guard progress.withLock({ $0.failure == nil }) else { return }
        var written = 0
        var failure: Publisher.Failure?
        var bytes: [UInt8] = []
        for (id, document) in batch {
            document.render(into: &bytes)
            do throws(Publisher.Failure) {
                if try publisher.publish(id, bytes, present: present, in: folder) { written += 1 }
            } catch {
                failure = error
                break
            }
        }
        progress.withLock { progress in
            progress.written += written
            if progress.failure == nil { progress.failure = failure }
        }
    }
}
