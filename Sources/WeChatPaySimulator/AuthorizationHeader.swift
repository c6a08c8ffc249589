import WeChatPay

/// The merchant's `Authorization` header, parsed the way the gateway reads it: the scheme, one
/// space, then exactly the five `key="value"` pairs joined by commas, all required.
struct AuthorizationHeader: Equatable {
    let mchid: String
    let nonce: String
    let signature: String
    let timestamp: String
    let serialNumber: String

    init?(_ header: String) {
        let prefix = RequestSigner.scheme + " "
        guard header.hasPrefix(prefix) else { return nil }
        var fields: [String: String] = [:]
        for pair in header.dropFirst(prefix.count).split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = pair.firstIndex(of: "=") else { return nil }
            let key = String(pair[..<equals])
            let quoted = pair[pair.index(after: equals)...]
            guard quoted.count >= 2, quoted.first == "\"", quoted.last == "\"", fields[key] == nil else { return nil }
            fields[key] = String(quoted.dropFirst().dropLast())
        }
        guard fields.count == 5, let mchid = fields["mchid"], let nonce = fields["nonce_str"], let signature = fields["signature"],
              let timestamp = fields["timestamp"], let serialNumber = fields["serial_no"] else { return nil }
        self.mchid = mchid
        self.nonce = nonce
        self.signature = signature
        self.timestamp = timestamp
        self.serialNumber = serialNumber
    }
}
