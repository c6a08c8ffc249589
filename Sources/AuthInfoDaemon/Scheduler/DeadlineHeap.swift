/// Keys ordered by deadline: a binary min-heap with lazy deletion, so rescheduling a key is
/// O(log n) and the earliest deadline is found without scanning every device.
struct DeadlineHeap {
    private struct Entry {
        let deadline: Double
        let key: String
        let generation: UInt64
    }

    private var heap: [Entry] = []
    private var current: [String: (deadline: Double, generation: UInt64)] = [:]
    private var generation: UInt64 = 0

    var count: Int { current.count }

    func deadline(of key: String) -> Double? { current[key]?.deadline }

    mutating func set(_ key: String, _ deadline: Double) {
        generation += 1
        current[key] = (deadline, generation)
        push(Entry(deadline: deadline, key: key, generation: generation))
        if heap.count > 4 * max(current.count, 16) { rebuild() }
    }

    mutating func remove(_ key: String) {
        current[key] = nil
    }

    /// The earliest live entry, if any.
    mutating func peek() -> (key: String, deadline: Double)? {
        while let top = heap.first {
            if let live = current[top.key], live.generation == top.generation { return (top.key, top.deadline) }
            popTop()
        }
        return nil
    }

    /// Removes and returns the earliest live entry.
    mutating func pop() -> (key: String, deadline: Double)? {
        guard let top = peek() else { return nil }
        popTop()
        current[top.key] = nil
        return top
    }

    /// Live keys whose deadline is at or before `time`, earliest first (without removing them).
    func keys(dueBy time: Double) -> [String] {
        current.filter { $0.value.deadline <= time }.sorted { $0.value.deadline < $1.value.deadline }.map(\.key)
    }

    private mutating func rebuild() {
        heap = current.map { Entry(deadline: $0.value.deadline, key: $0.key, generation: $0.value.generation) }
        for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    private mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        if !heap.isEmpty { siftDown(0) }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, less(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count, less(heap[right], heap[smallest]) { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }

    private func less(_ a: Entry, _ b: Entry) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.key < b.key)
    }
}
