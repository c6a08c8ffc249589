/// The keys of a `DeviceTable` ordered by deadline: an indexed binary min-heap. Each key has at
/// most one entry, whose position is tracked, so rescheduling or removing a key is O(log n), the
/// earliest deadline is O(1), and memory is one entry per key however often keys are
/// rescheduled.
///
/// Keys are the table's device ids, held as their positions in it: an entry is 16 bytes and a
/// key's place in the heap 4, where ids and a dictionary of their places took 60 (a heap of
/// 10,000 devices: 200 KB, not 630), and a move updates two array slots instead of hashing two
/// ids. A key not in the table has no deadline: setting one is a programming error (it asserts
/// in debug builds and is ignored otherwise); `rekey` follows a new table.
struct DeadlineHeap {
    private struct Entry {
        var deadline: Double
        let slot: Int32
    }

    private(set) var keys: DeviceTable
    private var heap: [Entry] = []
    /// Each key's index in `heap` by its position in `keys`; -1 when it has no entry.
    private var positions: [Int32]

    var count: Int { heap.count }

    /// An empty heap over the ids of `keys`.
    init(keys: DeviceTable) {
        self.keys = keys
        positions = Array(repeating: -1, count: keys.count)
    }

    /// The heap of `entries`, whose keys are distinct ids of `keys`, built at once in O(n) rather
    /// than by n insertions (a start plans every device together).
    init(keys: DeviceTable, _ entries: [(key: String, deadline: Double)]) {
        self.init(keys: keys, slots: entries.compactMap { entry in
            guard let slot = keys.position(of: entry.key) else {
                assertionFailure("DeadlineHeap: \(entry.key) is not a key")
                return nil
            }
            return (slot, entry.deadline)
        })
    }

    /// The heap of `entries`, whose keys are distinct positions in `keys` (0 ..< its count):
    /// for a caller that planned by position, without looking each id up again.
    init(keys: DeviceTable, slots entries: [(slot: Int, deadline: Double)]) {
        self.init(keys: keys)
        heap.reserveCapacity(entries.count)
        for entry in entries {
            precondition(positions.indices.contains(entry.slot), "DeadlineHeap: \(entry.slot) is not a position in its keys")
            precondition(positions[entry.slot] < 0, "DeadlineHeap: keys must be distinct")
            positions[entry.slot] = Int32(heap.count)
            heap.append(Entry(deadline: entry.deadline, slot: Int32(entry.slot)))
        }
        var index = heap.count / 2
        while index > 0 {
            index -= 1
            siftDown(index)
        }
    }

    func deadline(of key: String) -> Double? {
        keys.position(of: key).flatMap(deadline(atSlot:))
    }

    /// The deadline of the key at `slot`, its position in `keys` (0 ..< its count).
    func deadline(atSlot slot: Int) -> Double? {
        positions[slot] >= 0 ? heap[Int(positions[slot])].deadline : nil
    }

    /// Plans `key` at `deadline`, replacing its earlier deadline if it had one.
    mutating func set(_ key: String, _ deadline: Double) {
        guard let slot = keys.position(of: key) else {
            assertionFailure("DeadlineHeap: \(key) is not a key")
            return
        }
        let index = Int(positions[slot])
        if index >= 0 {
            heap[index].deadline = deadline
            restore(index)
        } else {
            heap.append(Entry(deadline: deadline, slot: Int32(slot)))
            positions[slot] = Int32(heap.count - 1)
            siftUp(heap.count - 1)
        }
    }

    /// Drops `key`'s deadline, if it has one (or is not a key at all).
    mutating func remove(_ key: String) {
        guard let slot = keys.position(of: key), positions[slot] >= 0 else { return }
        let index = Int(positions[slot])
        positions[slot] = -1
        let last = heap.count - 1
        if index != last {
            heap[index] = heap[last]
            positions[Int(heap[index].slot)] = Int32(index)
        }
        heap.removeLast()
        if index < heap.count { restore(index) }
    }

    /// The earliest entry, if any.
    func peek() -> (key: String, deadline: Double)? {
        heap.first.map { (keys.id(at: Int($0.slot)), $0.deadline) }
    }

    /// Removes and returns the earliest entry.
    mutating func pop() -> (key: String, deadline: Double)? {
        guard let top = peek() else { return nil }
        remove(top.key)
        return top
    }

    /// The same deadlines over the ids of `newKeys` (a reload): a key no longer in it loses its
    /// deadline.
    mutating func rekey(_ newKeys: DeviceTable) {
        let kept = heap.compactMap { entry -> (key: String, deadline: Double)? in
            let key = keys.id(at: Int(entry.slot))
            return newKeys.contains(key) ? (key, entry.deadline) : nil
        }
        self = DeadlineHeap(keys: newKeys, kept)
    }

    /// Moves the entry at `index` up or down to where it belongs.
    private mutating func restore(_ index: Int) {
        if index > 0, less(heap[index], heap[(index - 1) / 2]) {
            siftUp(index)
        } else {
            siftDown(index)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(heap[child], heap[parent]) else { break }
            swap(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, less(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count, less(heap[right], heap[smallest]) { smallest = right }
            guard smallest != parent else { return }
            swap(parent, smallest)
            parent = smallest
        }
    }

    private mutating func swap(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        positions[Int(heap[a].slot)] = Int32(a)
        positions[Int(heap[b].slot)] = Int32(b)
    }

    /// Earlier deadline first; equal deadlines by key, so the order is deterministic.
    private func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.slot != b.slot && keys.id(at: Int(a.slot)) < keys.id(at: Int(b.slot)))
    }
}
