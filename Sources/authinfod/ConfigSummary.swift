import AuthInfoDaemon
import FoundationEssentials

/// The human summary printed by `check-config`: no secrets, only what and where.
enum ConfigSummary {
    static func text(_ configuration: Configuration) -> String {
        let merchant = configuration.merchant
        let refresh = configuration.refresh
        var lines = [
            "config:        \(configuration.file) (valid)",
            "merchant:      \(merchant.mchid), API certificate \(merchant.serialNumber)",
            "verification:  \(merchant.verificationMode)" + (merchant.publicKeyID.map { " (\($0))" } ?? ""),
            "gateway:       \(configuration.api.baseURL.absoluteString)"
                + (configuration.api.backupBaseURL.map { ", backup \($0.absoluteString)" } ?? ", no backup")
                + ", timeout \(seconds(configuration.api.timeout))",
            "refresh:       every \(seconds(refresh.interval)) ±\(Int(refresh.jitterFraction * 100))%, authinfo lifetime \(seconds(refresh.authInfoTTL)), "
                + "backoff \(seconds(refresh.backoffMinimum))–\(seconds(refresh.backoffMaximum)), "
                + "≤\(number(refresh.maximumRequestsPerSecond)) req/s, ≤\(refresh.maximumConcurrentRequests) in flight",
            "database:      \(configuration.storage.database)",
            "publish dir:   \(configuration.storage.publishDirectory)",
            "unix socket:   " + (configuration.listen.unixSocket.map { "\($0) (mode 0\(String(configuration.listen.unixSocketMode, radix: 8)))" } ?? "off"),
            "tcp:           " + (configuration.listen.tcp.map { "\($0.host):\($0.port), \(configuration.listen.tcpClients.count) client(s)" } ?? "off"),
            "on_change:     " + (configuration.onChange.map { "\($0.command[0]) (timeout \(seconds($0.timeout)))" } ?? "none"),
            "devices:       \(configuration.devices.count)",
        ]
        for device in configuration.devices.prefix(20) {
            let source = switch device.rawData {
            case .inline: "raw_data inline"
            case .file(let path): "raw_data_file \(path)"
            }
            lines.append("  \(device.id)  sub_mchid \(device.subMchID)  organization \(device.organizationID)  \(source)")
        }
        if configuration.devices.count > 20 { lines.append("  … and \(configuration.devices.count - 20) more") }
        return lines.joined(separator: "\n")
    }

    static func seconds(_ value: Double) -> String { "\(number(value)) s" }

    static func number(_ value: Double) -> String {
        value.rounded() == value ? String(Int(value)) : String(value)
    }
}
