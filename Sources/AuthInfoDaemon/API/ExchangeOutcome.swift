/// What `POST /v1/devices/{id}/authinfo` (the exchange: raw_data in, authinfo out) ends with.
enum ExchangeOutcome: Sendable {
    /// The value to answer with: fresh and fetched from this raw_data, or just refreshed.
    case value(ServedDocuments.Entry)
    /// No new value now (the gateway is down, or the refresh is still waiting its turn): the
    /// cached valid value, and why.
    case cached(ServedDocuments.Entry, RefreshProblem)
    /// No new value and none valid cached.
    case unavailable(RefreshProblem)
    /// The gateway refused this raw_data: the device must generate new raw_data.
    case rawDataRejected(code: String, message: String)
    /// The gateway refused the device itself (its configuration: sub_mchid, organization, …).
    case deviceRejected(code: String, message: String)
    case unknownDevice
}

/// Why an exchange could not return a new value, and when a retry may do better.
struct RefreshProblem: Sendable {
    let code: String
    let message: String
    let retryIn: Double
}
