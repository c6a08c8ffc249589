/// The configured devices, looked up by id. Holds the configuration's own array (shared, not
/// copied) and an index into it, so a device's settings are stored once however many devices
/// there are.
///
/// Positions are only meaningful in the table that gave them: a part handed positions rather
/// than ids (a start plans 100,000 devices by position, not by hashing each id again in every
/// part) checks with `isSame(as:)` that they index its own table.
struct DeviceTable {
    /// Shared by the copies of one table, and only by them.
    private final class Identity: Sendable {}

    private let list: [Configuration.Device]
    private let index: [String: Int]
    private let identity = Identity()

    init(_ devices: [Configuration.Device]) {
        list = devices
        var index = [String: Int](minimumCapacity: devices.count)
        // By index, not `enumerated()`: that copies each device (a retain and a release of each
        // of its strings) to read one field.
        for position in devices.indices { index[devices[position].id] = position }
        self.index = index
    }

    subscript(id: String) -> Configuration.Device? {
        index[id].map { list[$0] }
    }

    func contains(_ id: String) -> Bool { index[id] != nil }

    /// Where `id` stands in configuration order (0 ..< count), or nil when it is not configured.
    func position(of id: String) -> Int? { index[id] }

    /// The id of the device at `position` (0 ..< count).
    func id(at position: Int) -> String { list[position].id }

    /// Device ids in configuration order.
    var ids: [String] { list.map(\.id) }

    var count: Int { list.count }

    /// Whether `other` is this table (a copy of it), so that its positions are this table's.
    func isSame(as other: DeviceTable) -> Bool { identity === other.identity }
}
