import Dispatch
import CLinux
import WeChatPay

/// The refresher as the socket API sees it: each request hops onto the queue, and the reply
/// leaves from there (or, for tokens, from the gateway client's thread).
extension Refresher: DeviceService {
    nonisolated func monotonicNow() -> Double { clock.monotonic() }

    nonisolated func refreshNow(_ id: String) {
        refreshNow([id])
    }

    nonisolated func pushRawData(_ id: String, _ rawData: String, reply: @escaping @Sendable (Bool) -> Void) {
        onQueue { refresher in
            guard !refresher.stopped, refresher.devices.contains(id), var record = refresher.records[id] else { return reply(false) }
            record.pushedRawData = rawData
            record.rejected = false
            refresher.records[id] = record
            refresher.persist(record)
            refresher.refreshNowOnQueue([id])
            reply(true)
        }
    }

    nonisolated func mintToken(user: String, organization: String, reply: @escaping @Sendable (Result<String, WeChatPayError>) -> Void) {
        onQueue { refresher in
            guard let client = refresher.client, !refresher.stopped else {
                return reply(.failure(WeChatPayError(kind: .local("the daemon is stopping"), endpoint: "POST /v3/offlinefacemch/tokens")))
            }
            client.token(outUserID: user, organizationID: organization, completion: reply)
        }
    }

    nonisolated func status(reply: @escaping @Sendable (StatusReport) -> Void) {
        onQueue { refresher in
            reply(refresher.statusReportOnQueue())
            refresher.trimSoon()
        }
    }

    nonisolated func metricsText(reply: @escaping @Sendable (String) -> Void) {
        onQueue { refresher in
            reply(refresher.metrics.exposition(refresher.statusReportOnQueue(), version: BuildInfo.version, storageFault: refresher.storageFault != nil,
                                               perDevice: refresher.configuration.metrics.perDevice))
            refresher.trimSoon()
        }
    }

    /// A status or metrics answer covers every device (megabytes at 10,000): once it has been
    /// sent and freed, hand the allocator's free pages back, or an idle daemon keeps the
    /// resident size of its last scrape. A trim walks every arena on this queue, so it runs a
    /// second after the answer and at most once per `trimInterval`, however often clients ask.
    func trimSoon() {
        guard !trimPending else { return }
        trimPending = true
        let delay = max(1, lastTrim + Self.trimInterval - clock.monotonic())
        queue.asyncAfter(deadline: .now() + delay) { [weak self] in
            self?.assumeIsolated { refresher in
                refresher.trimPending = false
                refresher.trim()
            }
        }
    }

    /// Hands the allocator's free pages back to the system now.
    func trim() {
        lastTrim = clock.monotonic()
        malloc_trim(0)
    }

    /// The shortest time between two trims after answers (`trimSoon`).
    static let trimInterval = 10.0
}
