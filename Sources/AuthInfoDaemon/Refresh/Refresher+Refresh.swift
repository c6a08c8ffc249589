import FoundationEssentials
import WeChatPay

extension Refresher {
    /// Starts one device's refresh: reads its raw_data, then calls the gateway off the queue.
    func begin(_ id: String) {
        guard let device = devices[id] else {
            scheduler.remove(id)
            return orphaned(id)
        }
        let rawData: String
        do {
            rawData = try self.rawData(for: device)
        } catch {
            finish(id, .localFailure, error: RecordedError(code: "raw_data_unreadable", message: error.description, httpStatus: nil, requestID: nil, at: clock.wall()))
            return
        }
        guard var record = records[id] else { return orphaned(id) }
        let wall = clock.wall()
        let digest = RawDataDigest.of(rawData)
        if record.rawDataDigest != digest {
            // New raw_data (pushed, configured or in the file): whatever was refused is behind us.
            record.rawDataDigest = digest
            record.rawDataSince = wall
            record.needsRawData = false
            records[id] = record
        }
        if !record.needsRawData, let maximumAge = configuration.refresh.rawDataMaxAge, let since = record.rawDataSince, wall - since > maximumAge {
            let message = "the raw_data is \(Int(wall - since)) s old, above refresh.raw_data_max_age_seconds (\(Int(maximumAge)))"
            return needRawData(id, RecordedError(code: "raw_data_too_old", message: message, httpStatus: nil, requestID: nil, at: wall))
        }
        if record.needsRawData {
            // The same raw_data the gateway refused: sending it again cannot succeed.
            let next = scheduler.finish(id, .waitingForRawData, now: clock.monotonic())
            record.nextAttemptAt = wall + (next - clock.monotonic())
            records[id] = record
            return
        }
        let request = AuthInfoRequest(spAppID: device.spAppID, subAppID: device.subAppID, subMchID: device.subMchID,
                                      deviceID: device.id, rawData: rawData, organizationID: device.organizationID)
        guard let client else { return orphaned(id) }
        startedAt[id] = clock.monotonic()
        sentRawData[id] = digest
        // The call runs on the gateway loop's thread (or an exchange thread, to connect), and its
        // result is handled on that thread, inside the actor: `queue.sync` runs the block on the
        // calling thread when the queue is free (and waits its turn when not). So a steady
        // refresh loop — answer, commit, publish, the next sign — wakes no thread.
        client.authinfo(request) { result in
            self.onQueueSync { refresher in
                switch result {
                case .success(let info): refresher.succeeded(id, info)
                case .failure(let error): refresher.failed(id, error)
                }
            }
        }
    }

    struct RawDataFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// The raw_data to send: what the device pushed over the socket, else the config's inline
    /// value, else the file (re-read before every refresh).
    func rawData(for device: Configuration.Device) throws(RawDataFailure) -> String {
        if let pushed = records[device.id]?.pushedRawData { return pushed }
        switch device.rawData {
        case .inline(let value): return value
        case .file(let path):
            let bytes: [UInt8]
            do {
                bytes = try SecretFile.read(path, maximumBytes: 64 * 1024)
            } catch {
                throw RawDataFailure(description: "raw_data_file: \(error.description)")
            }
            let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
            guard !text.isEmpty else { throw RawDataFailure(description: "raw_data_file \(path) is empty") }
            return text
        }
    }

    /// A refresh of `id` that ends unheard: its device is no longer configured (a reload removed
    /// it while the call was out), or the call never started. Its place is freed; a device added
    /// back later is planned by the reload that adds it.
    func orphaned(_ id: String) {
        scheduler.abandon(id)
        startedAt[id] = nil
        sentRawData[id] = nil
    }

    func succeeded(_ id: String, _ info: AuthInfo) {
        guard !stopped else { return }
        guard devices.contains(id), var record = records[id] else { return orphaned(id) }
        let wall = clock.wall(), mono = clock.monotonic()
        let lifetime = Double(info.expiresIn ?? Int(configuration.refresh.authInfoTTL))
        let wasFailing = record.consecutiveFailures > 0 || record.rejected || (record.authinfo != nil && !record.isValid(at: wall))
        let failures = record.consecutiveFailures
        record.fetchedWithRawData = sentRawData.removeValue(forKey: id)
        record.needsRawData = false
        record.authinfo = info.value
        record.fetchedAt = wall
        record.expiresAt = wall + lifetime
        record.consecutiveFailures = 0
        record.rejected = false
        record.lastError = nil
        let next = scheduler.finish(id, .success(lifetime: lifetime), now: mono)
        record.nextAttemptAt = wall + (next - mono)
        records[id] = record
        recordMetrics(id, result: "success", code: "", mono: mono)
        var stored = persist(record)
        expiries.set(id, mono + lifetime)
        // Served first (committed already), then the file from the JSON the entry's tag was made of.
        if let (_, published) = updateServed(id) {
            do {
                try publisher.write(id, published)
                hook?.changed(device: id, file: publisher.path(of: id), state: .fresh)
            } catch {
                noteStorageFault("publish_failed", error.description, device: id)
                stored = false
            }
        }
        if stored && storageFault != nil { repairStorage() }
        logger.info("refreshed", ["device": id, "expires_in": Int(lifetime), "next_refresh_in": Int(next - mono)])
        answerExchanges(id) { now in (served.lookup(id) ?? nil).map(ExchangeOutcome.value)
            ?? .unavailable(RefreshProblem(code: "no_value", message: "the new value could not be served", retryIn: 1)) }
        if wasFailing { logger.info("recovered", ["device": id, "after_failures": failures]) }
        notifyStatusIfDue()
        tick()
    }

    func failed(_ id: String, _ error: WeChatPayError) {
        guard !stopped else { return }
        guard devices.contains(id) else { return orphaned(id) }
        let sent = sentRawData.removeValue(forKey: id)
        if error.refusesRawData {
            let refused = RecordedError(code: error.code, message: error.message, httpStatus: error.httpStatus, requestID: error.requestID, at: clock.wall())
            guard records[id]?.rawDataDigest == sent else {
                // New raw_data came while the old one was being refused: try the new one now.
                let mono = clock.monotonic()
                _ = scheduler.finish(id, .waitingForRawData, now: mono)
                scheduler.schedule(id, at: mono)
                recordMetrics(id, result: "rejected", code: refused.code, mono: mono)
                return tick()
            }
            return needRawData(id, refused)
        }
        let outcome: RefreshOutcome
        switch error.kind {
        case .transport, .timeout: outcome = .gatewayUnavailable
        case .http(let status, _, _, _) where status == 429 || status >= 500: outcome = .gatewayUnavailable
        case .malformedAnswer, .signature, .unverifiedError: outcome = .deviceRetryable
        case .http, .local: outcome = .rejected
        }
        finish(id, outcome, error: RecordedError(code: error.code, message: error.message, httpStatus: error.httpStatus,
                                                  requestID: error.requestID, at: clock.wall()))
    }

    /// Records a failed attempt, reschedules, persists and logs it.
    func finish(_ id: String, _ outcome: RefreshOutcome, error: RecordedError) {
        guard var record = records[id] else { return }
        let wall = clock.wall(), mono = clock.monotonic()
        let wasOutage = scheduler.outage != nil
        let wasRejected = record.rejected
        record.consecutiveFailures += 1
        record.rejected = outcome == .rejected
        record.lastError = error
        let next = scheduler.finish(id, outcome, now: mono)
        let retryAt = scheduler.nextAttempt(of: id, now: mono) ?? next
        record.nextAttemptAt = wall + (retryAt - mono)
        records[id] = record
        recordMetrics(id, result: outcome == .rejected ? "rejected" : "failure", code: error.code, mono: mono)
        persist(record)
        updateServed(id)
        let retryIn = max(0, retryAt - mono)
        answerExchanges(id) { now in
            outcome == .rejected ? .deviceRejected(code: error.code, message: error.message)
                : cachedOrUnavailable(id, RefreshProblem(code: error.code, message: error.message, retryIn: max(1, retryIn)), at: now)
        }
        if outcome == .rejected && !wasRejected { hook?.changed(device: id, file: publisher.path(of: id), state: .rejected) }
        if outcome == .rejected {
            logger.error("rejected", ["device": id, "code": error.code, "http_status": error.httpStatus, "request_id": error.requestID,
                                      "retry_in": retryIn, "error": error.message])
        } else {
            logger.warning("refresh_failed", ["device": id, "code": error.code, "http_status": error.httpStatus, "request_id": error.requestID,
                                              "failures": record.consecutiveFailures, "retry_in": retryIn, "error": error.message])
        }
        if !wasOutage, let outage = scheduler.outage {
            logger.warning("outage", ["probe_in": max(0, outage.nextProbeAt - mono),
                                      "hint": "the gateway is unreachable; cached authinfo stays served until it expires; probing with backoff"])
        }
        notifyStatusIfDue()
        tick()
    }

    /// The device's raw_data was refused (or is too old): no gateway call for it until new
    /// raw_data arrives; its valid value stays served. Logged once, when it happens.
    func needRawData(_ id: String, _ error: RecordedError) {
        guard var record = records[id] else { return }
        let wall = clock.wall(), mono = clock.monotonic()
        if !record.needsRawData { hook?.changed(device: id, file: publisher.path(of: id), state: .needsRawData) }
        record.needsRawData = true
        record.rejected = false
        record.consecutiveFailures += 1
        record.lastError = error
        let next = scheduler.finish(id, .waitingForRawData, now: mono)
        record.nextAttemptAt = wall + (next - mono)
        records[id] = record
        recordMetrics(id, result: "rejected", code: error.code, mono: mono)
        persist(record)
        updateServed(id)
        answerExchanges(id) { _ in .rawDataRejected(code: error.code, message: error.message) }
        logger.error("needs_raw_data", ["device": id, "code": error.code, "http_status": error.httpStatus, "request_id": error.requestID,
                                        "error": error.message,
                                        "hint": "no call for this device until it sends new raw_data (PUT …/raw_data, POST …/authinfo, or the config); its valid value stays served"])
        notifyStatusIfDue()
        tick()
    }

    private func recordMetrics(_ id: String, result: String, code: String, mono: Double) {
        refreshesSinceTrim += 1
        metrics.recordRefresh(result: result, code: code)
        if let started = startedAt.removeValue(forKey: id) { metrics.recordLatency(mono - started) }
    }

    /// Serves `id`'s value as it stands now, from its record and plan (monotonic deadlines);
    /// returns what is served and its published JSON (what its file holds), rendered once.
    @discardableResult
    func updateServed(_ id: String) -> (entry: ServedDocuments.Entry, published: [UInt8])? {
        let mono = clock.monotonic()
        guard let record = records[id], let document = AuthInfoDocument(record), let expiresAt = expiresAtMonotonic(id, now: mono) else {
            served.set(id, nil)
            return nil
        }
        let published = document.publishedJSON()
        let entry = Self.servedEntry(document, record, expiresAt: expiresAt, dueAt: scheduler.nextAttempt(of: id, now: mono) ?? expiresAt)
        served.set(id, entry)
        return (entry, published)
    }

    /// What the socket serves for `record`, whose value is `document`, expiring and due at those
    /// monotonic times.
    static func servedEntry(_ document: AuthInfoDocument, _ record: DeviceRecord, expiresAt: Double, dueAt: Double) -> ServedDocuments.Entry {
        ServedDocuments.Entry(document: document, expiresAt: expiresAt, dueAt: dueAt, failing: record.consecutiveFailures > 0,
                              needsRawData: record.needsRawData)
    }

    /// When `id`'s value expires on the monotonic clock: its expiry deadline while it is valid,
    /// otherwise `now` (expired, or never valid since start); nil without a value.
    func expiresAtMonotonic(_ id: String, now: Double) -> Double? {
        guard records[id]?.authinfo != nil else { return nil }
        return expiries.deadline(of: id) ?? now
    }

    /// Commits `record`; false (and the fault noted) when the database cannot be written.
    @discardableResult
    func persist(_ record: DeviceRecord) -> Bool {
        do {
            try store?.save([record])
            scheduleDurableSync()
            return true
        } catch {
            noteStorageFault("storage_error", error.description, device: record.deviceID)
            return false
        }
    }

}
