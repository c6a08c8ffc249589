/// Every device's record, by id: the refresher's cache in memory.
///
/// Records of configured devices sit in one flat array in configuration order, found through
/// the `DeviceTable`'s own index (no second hash table: a dictionary of 10,000 records took
/// 2.4 MB, the array takes half). Records of devices no longer configured (the cache keeps them:
/// a device may come back) sit beside it, by id.
struct RecordTable {
    private var devices: DeviceTable
    private var configured: [DeviceRecord?]
    private var others: [String: DeviceRecord] = [:]

    /// No records, for the devices of `devices`.
    init(devices: DeviceTable) {
        self.devices = devices
        configured = Array(repeating: nil, count: devices.count)
    }

    subscript(id: String) -> DeviceRecord? {
        get {
            if let position = devices.position(of: id) { return configured[position] }
            return others[id]
        }
        set {
            if let position = devices.position(of: id) {
                configured[position] = newValue
            } else {
                others[id] = newValue
            }
        }
    }

    /// The record of the device at `position` in the table's `DeviceTable` (0 ..< its count):
    /// for a caller that has the position already, without looking the id up again.
    subscript(configured position: Int) -> DeviceRecord? {
        get { configured[position] }
        set { configured[position] = newValue }
    }

    /// Whether positions in `table` are this table's (it is the one the records follow).
    func follows(_ table: DeviceTable) -> Bool { devices.isSame(as: table) }

    /// What the state of the device at `position` is decided from, read in place (no copy of
    /// its record, nor a retain of its strings); nil without a record. For a pass over every
    /// device.
    func stateFacts(configured position: Int) -> DeviceStatus.Facts? {
        configured[position].map(DeviceStatus.Facts.init)
    }

    /// Every record, configured devices' first, in configuration order.
    var all: [DeviceRecord] { configured.compactMap { $0 } + others.values }

    var count: Int { configured.count { $0 != nil } + others.count }

    /// The same records for the devices of `newDevices` (a reload): each record keeps its id; one
    /// whose device is no longer configured moves beside the array, and one whose device is
    /// configured again moves back into it.
    mutating func reconfigure(_ newDevices: DeviceTable) {
        var next = RecordTable(devices: newDevices)
        for (position, record) in configured.enumerated() {
            if let record { next[devices.id(at: position)] = record }
        }
        for (id, record) in others { next[id] = record }
        self = next
    }
}
