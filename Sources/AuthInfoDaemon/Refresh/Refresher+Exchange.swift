import Dispatch
import WeChatPay

/// The exchange (`POST /v1/devices/{id}/authinfo`): a terminal hands over fresh raw_data and
/// gets authinfo back, with the cache, the rate limit and the outage rules behind it.
extension Refresher {
    /// A terminal waiting for its device's refresh.
    struct PendingExchange {
        let token: Int
        let reply: @Sendable (ExchangeOutcome) -> Void
    }

    nonisolated func exchange(_ id: String, rawData: String, reply: @escaping @Sendable (ExchangeOutcome) -> Void) {
        onQueue { $0.exchangeOnQueue(id, rawData: rawData, reply: reply) }
    }

    private func exchangeOnQueue(_ id: String, rawData: String, reply: @escaping @Sendable (ExchangeOutcome) -> Void) {
        guard !stopped, devices.contains(id), var record = records[id] else { return reply(.unknownDevice) }
        let wall = clock.wall(), mono = clock.monotonic()
        let digest = RawDataDigest.of(rawData)
        if record.rawDataDigest == digest, record.needsRawData, let refused = record.lastError {
            // This very raw_data was refused already: say so without asking again.
            return reply(.rawDataRejected(code: refused.code, message: refused.message))
        }
        record.pushedRawData = rawData
        record.rejected = false
        if record.rawDataDigest != digest {
            record.rawDataDigest = digest
            record.rawDataSince = wall
            record.needsRawData = false
        }
        records[id] = record
        if record.fetchedWithRawData == digest, let entry = served.lookup(id) ?? nil, entry.state(at: mono) == .fresh {
            persist(record)
            return reply(.value(entry))
        }
        if startedAt[id] == nil { scheduler.schedule(id, at: mono) }
        if let outage = scheduler.outage, startedAt[id] == nil {
            // The gateway is down: answer now rather than after a doomed call; the device is
            // refreshed as soon as a probe gets through.
            let problem = RefreshProblem(code: "gateway_unavailable", message: "the gateway cannot be reached; the device is refreshed as soon as it can be",
                                         retryIn: max(1, outage.nextProbeAt - mono))
            persist(record)
            reply(cachedOrUnavailable(id, problem, at: mono))
            return tick()
        }
        // Committed with the refresh's outcome (one commit, not two, on the exchange's path): the
        // terminal hears nothing before that, so no answer ever rests on an uncommitted raw_data.
        nextExchangeToken += 1
        let token = nextExchangeToken
        exchanges[id, default: []].append(PendingExchange(token: token, reply: reply))
        // Always answered within api.timeout_seconds + 1 s, whatever the refresh is waiting for.
        queue.asyncAfter(deadline: .now() + configuration.api.timeout + 0.8) { [weak self] in
            self?.assumeIsolated { $0.exchangeTimedOut(id, token: token) }
        }
        tick()
    }

    private func exchangeTimedOut(_ id: String, token: Int) {
        guard let index = exchanges[id]?.firstIndex(where: { $0.token == token }) else { return }
        let pending = exchanges[id]!.remove(at: index)
        if exchanges[id]?.isEmpty == true { exchanges[id] = nil }
        if let record = records[id] { persist(record) }
        let mono = clock.monotonic()
        let retryIn = max(1, (scheduler.nextAttempt(of: id, now: mono) ?? mono) - mono)
        pending.reply(cachedOrUnavailable(id, RefreshProblem(code: "refresh_pending",
                                                             message: "the refresh did not finish within api.timeout_seconds; it goes on",
                                                             retryIn: retryIn), at: mono))
    }

    /// Answers every exchange waiting for `id` (after its refresh ended one way or another).
    func answerExchanges(_ id: String, _ outcome: (_ now: Double) -> ExchangeOutcome) {
        guard let pending = exchanges.removeValue(forKey: id), !pending.isEmpty else { return }
        let answer = outcome(clock.monotonic())
        for exchange in pending { exchange.reply(answer) }
    }

    /// The cached value with `problem` while it is valid, otherwise just the problem.
    func cachedOrUnavailable(_ id: String, _ problem: RefreshProblem, at mono: Double) -> ExchangeOutcome {
        guard let entry = served.lookup(id) ?? nil, entry.state(at: mono) != .expired else { return .unavailable(problem) }
        return .cached(entry, problem)
    }
}
