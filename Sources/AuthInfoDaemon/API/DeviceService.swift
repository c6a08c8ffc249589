import WeChatPay

/// What the socket API may ask of the daemon, and nothing more: read what devices are served,
/// request refreshes, take new raw_data, mint face-pay tokens, and report status and metrics.
/// Every call returns at once; answers come through `reply`, from any thread.
protocol DeviceService: Sendable {
    /// The served documents (the hot path reads them without a hop onto the daemon's queue).
    var served: ServedDocuments { get }
    /// Monotonic seconds, the clock `served` deadlines are on.
    func monotonicNow() -> Double
    /// Refreshes `id` as soon as the rate limit allows.
    func refreshNow(_ id: String)
    /// The exchange: keeps `rawData` (persisted) for `id` and answers with its value — the cached
    /// one when it is fresh and came from this raw_data, else a new one (coalesced with a refresh
    /// in flight, within the rate) — or why not, within `api.timeout_seconds` + 1 s.
    func exchange(_ id: String, rawData: String, reply: @escaping @Sendable (ExchangeOutcome) -> Void)
    /// Keeps `rawData` (persisted) for `id` and refreshes it now; `reply(false)` for an unknown device.
    func pushRawData(_ id: String, _ rawData: String, reply: @escaping @Sendable (Bool) -> Void)
    /// A face-pay token for the user, from the gateway.
    func mintToken(user: String, organization: String, reply: @escaping @Sendable (Result<String, WeChatPayError>) -> Void)
    /// Every device's live status.
    func status(reply: @escaping @Sendable (StatusReport) -> Void)
    /// The Prometheus text exposition.
    func metricsText(reply: @escaping @Sendable (String) -> Void)
}
