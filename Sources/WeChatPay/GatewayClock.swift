import FoundationEssentials
import Synchronization

/// How far the gateway's clock is from this host's, as the `Wechatpay-Timestamp` of answers whose
/// signature verified shows it (whole seconds; positive: the gateway is ahead). The gateway
/// refuses requests more than 300 s off its clock, and answers are refused past 300 s too, so an
/// operator wants to see drift long before that.
public final class GatewayClock: Sendable {
    /// Beyond this many seconds either way the offset is worth a warning.
    public static let warningSeconds = 60.0

    private let offset = Mutex<Double?>(nil)

    public init() {}

    /// The latest measured offset, nil before any verified answer.
    public var offsetSeconds: Double? { offset.withLock { $0 } }

    /// Records a measurement; true when it crossed `warningSeconds` (either way) compared with the
    /// previous one, or is the first one and beyond it.
    func record(gatewayTimestamp: Int, now: Date) -> Bool {
        // Both in whole seconds: the gateway's timestamp is truncated, so a clock in step reads 0.
        let measured = Double(gatewayTimestamp) - now.timeIntervalSince1970.rounded(.down)
        return offset.withLock { offset in
            let wasBeyond = offset.map { abs($0) > Self.warningSeconds } ?? false
            offset = measured
            return wasBeyond != (abs(measured) > Self.warningSeconds)
        }
    }
}
