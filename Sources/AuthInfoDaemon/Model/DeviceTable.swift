/// The configured devices, looked up by id. Holds the configuration's own array (shared, not
/// copied) and an index into it, so a device's settings are stored once however many devices
/// there are.
struct DeviceTable {
    private let list: [Configuration.Device]
    private let index: [String: Int]

    init(_ devices: [Configuration.Device]) {
        list = devices
        var index = [String: Int](minimumCapacity: devices.count)
        for (position, device) in devices.enumerated() { index[device.id] = position }
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
}
