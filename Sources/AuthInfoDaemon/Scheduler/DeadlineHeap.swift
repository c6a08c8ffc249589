/// Keys ordered by deadline: an indexed binary min-heap. Each key has exactly one entry (its
/// position is tracked), so rescheduling or removing a key is O(log n), the earliest deadline is
/// O(1), and memory is one entry per key however often keys are rescheduled.
struct DeadlineHeap {
    private struct Entry {
        var deadline: Double
        let key: String
    }

    private var heap: [Entry] = []
    private var positions: [String: Int] = [:]

    var count: Int { heap.count }

    init() {}

    /// The heap of `entries`, whose keys are distinct, built at once in O(n) rather than by n
    /// insertions (a start plans every device together).
    init(_ entries: [(key: String, deadline: Double)]) {
        heap = entries.map { Entry(deadline: $0.deadline, key: $0.key) }
        var index = heap.count / 2
        while index > 0 {
            index -= 1
            siftDown(index, tracking: false)
        }
        positions.reserveCapacity(heap.count)
        for (position, entry) in heap.enumerated() { positions[entry.key] = position }
        precondition(positions.count == heap.count, "DeadlineHeap: keys must be distinct")
    }

    func deadline(of key: String) -> Double? { positions[key].map { heap[$0].deadline } }

    /// Plans `key` at `deadline`, replacing its earlier deadline if it had one.
    mutating func set(_ key: String, _ deadline: Double) {
        if let index = positions[key] {
            heap[index].deadline = deadline
            restore(index)
        } else {
            heap.append(Entry(deadline: deadline, key: key))
            positions[key] = heap.count - 1
            siftUp(heap.count - 1)
        }
    }

    mutating func remove(_ key: String) {
        guard let index = positions.removeValue(forKey: key) else { return }
        let last = heap.count - 1
        if index != last {
            heap[index] = heap[last]
            positions[heap[index].key] = index
        }
        heap.removeLast()
        if index < heap.count { restore(index) }
    }

    /// The earliest entry, if any.
    func peek() -> (key: String, deadline: Double)? {
        heap.first.map { ($0.key, $0.deadline) }
    }

    /// Removes and returns the earliest entry.
    mutating func pop() -> (key: String, deadline: Double)? {
        guard let top = peek() else { return nil }
        remove(top.key)
        return top
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

    /// `tracking: false` only while building (positions are filled in afterwards).
    private mutating func siftDown(_ start: Int, tracking: Bool = true) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, less(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count, less(heap[right], heap[smallest]) { smallest = right }
            guard smallest != parent else { return }
            if tracking { swap(parent, smallest) } else { heap.swapAt(parent, smallest) }
            parent = smallest
        }
    }

    private mutating func swap(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        positions[heap[a].key] = a
        positions[heap[b].key] = b
    }

    /// Earlier deadline first; equal deadlines by key, so the order is deterministic.
    private func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.key < b.key)
    }
}
