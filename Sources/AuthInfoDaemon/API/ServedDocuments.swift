import Foundation
import Synchronization

/// The documents `GET /v1/devices/{id}/authinfo` answers with, pre-rendered, readable from the
/// listeners' queues without a hop onto the daemon's queue (the hot path of the socket API).
///
/// `Mutex` rather than queue confinement because readers are the server queues and the only
/// writer is the daemon's queue; each access is a dictionary lookup or store.
final class ServedDocuments: Sendable {
    /// Deadlines are monotonic: a wall-clock jump never turns a valid value "expired".
    struct Entry: Sendable {
        /// Shares its strings with the device's record: no copy of the value per device.
        let document: AuthInfoDocument
        let expiresAt: Double
        /// When the refresh becomes overdue.
        let dueAt: Double
        let failing: Bool

        func state(at now: Double) -> AuthInfoDocument.State {
            .of(expiresAt: expiresAt, failing: failing, dueAt: dueAt, now: now)
        }

        /// The body at monotonic time `now`.
        func body(at now: Double) -> [UInt8] {
            document.json(state: state(at: now))
        }
    }

    private struct State {
        var devices = Set<String>()
        var entries: [String: Entry] = [:]
    }

    private let state = Mutex(State())

    /// The configured device ids (unknown ones get 404).
    func configure(devices: Set<String>) {
        state.withLock { state in
            state.devices = devices
            state.entries.reserveCapacity(devices.count)
        }
    }

    func set(_ id: String, _ entry: Entry?) {
        state.withLock { $0.entries[id] = entry }
    }

    /// nil: unknown device; `.some(nil)`: configured but no value yet.
    func lookup(_ id: String) -> Entry?? {
        state.withLock { state in
            guard state.devices.contains(id) else { return nil }
            return .some(state.entries[id])
        }
    }
}
