import WeChatPay

/// The refresher as the socket API sees it: each request hops onto the queue, and the reply
/// leaves from there (or, for tokens, from the gateway client's thread).
extension Refresher: DeviceService {
    func monotonicNow() -> Double { clock.monotonic() }

    func refreshNow(_ id: String) {
        refreshNow([id])
    }

    func pushRawData(_ id: String, _ rawData: String, reply: @escaping @Sendable (Bool) -> Void) {
        queue.async {
            guard !self.stopped, self.devices.contains(id), var record = self.records[id] else { return reply(false) }
            record.pushedRawData = rawData
            record.rejected = false
            self.records[id] = record
            self.persist(record)
            self.refreshNowOnQueue([id])
            reply(true)
        }
    }

    func mintToken(user: String, organization: String, reply: @escaping @Sendable (Result<String, WeChatPayError>) -> Void) {
        queue.async {
            guard let client = self.client, !self.stopped else {
                return reply(.failure(WeChatPayError(kind: .local("the daemon is stopping"), endpoint: "POST /v3/offlinefacemch/tokens")))
            }
            client.token(outUserID: user, organizationID: organization, completion: reply)
        }
    }

    func status(reply: @escaping @Sendable (StatusReport) -> Void) {
        queue.async { reply(self.statusReportOnQueue()) }
    }

    func metricsText(reply: @escaping @Sendable (String) -> Void) {
        queue.async {
            reply(self.metrics.exposition(self.statusReportOnQueue(), version: BuildInfo.version, storageFault: self.storageFault != nil))
        }
    }
}
