import Testing
@testable import AuthInfoDaemon

@Suite struct BackoffAndRateLimitTests {
    @Test func backoffGrowsExponentiallyWithinItsBounds() {
        let backoff = Backoff(minimum: 1, maximum: 300)
        for failures in 1...40 {
            for random in [0.0, 0.5, 0.999] {
                let delay = backoff.delay(failures: failures, random: random)
                #expect(delay >= 1 && delay <= 300)
            }
        }
        #expect(backoff.delay(failures: 1, random: 0.999) < 1.01)
        #expect(backoff.delay(failures: 4, random: 0) == 4)
        #expect(backoff.delay(failures: 4, random: 0.999) > 7.9)
        #expect(backoff.delay(failures: 30, random: 0) == 150)
        #expect(backoff.delay(failures: 30, random: 0.999) > 299)
    }

    /// Drives the limiter as greedily as possible and checks every one-second window.
    @Test(arguments: [10.0, 1.0, 2.5, 0.5, 100.0])
    func noSlidingSecondExceedsTheRate(rate: Double) {
        var limiter = RateLimiter(requestsPerSecond: rate)
        var now = 0.0
        var starts: [Double] = []
        while starts.count < 500 {
            now = limiter.nextAllowed(at: now)
            limiter.record(now)
            starts.append(now)
            now += 0.0001
        }
        for (index, start) in starts.enumerated() {
            let inWindow = starts[index...].prefix { $0 < start + 1 }.count
            #expect(Double(inWindow) <= max(1, rate), "window at \(start) holds \(inWindow)")
        }
        let achieved = Double(starts.count - 1) / (starts.last! - starts.first!)
        #expect(achieved > min(rate, 1) * 0.45, "the limiter should not starve: \(achieved)/s")
    }
}

@Suite struct RefreshSchedulerTests {
    /// The devices these tests schedule.
    static let devices = DeviceTable.named(["a", "b", "c"] + (0..<40).map { "d\($0)" })

    func settings(concurrency: Int = 4, rate: Double = 10) -> Configuration.Refresh {
        var refresh = Configuration.Refresh()
        refresh.interval = 100
        refresh.authInfoTTL = 200
        refresh.jitterFraction = 0.1
        refresh.backoffMinimum = 1
        refresh.backoffMaximum = 60
        refresh.maximumRequestsPerSecond = rate
        refresh.maximumConcurrentRequests = concurrency
        return refresh
    }

    @Test func devicesStartInDeadlineOrderWithinTheConcurrencyCap() {
        let scheduler = RefreshScheduler(settings: settings(concurrency: 2), devices: Self.devices, random: { 0.5 })
        scheduler.schedule("c", at: 3)
        scheduler.schedule("a", at: 1)
        scheduler.schedule("b", at: 2)
        #expect(scheduler.take(now: 0.5).start.isEmpty)
        #expect(scheduler.take(now: 0.5).wake == 1)
        #expect(scheduler.take(now: 5).start == ["a", "b"])
        #expect(scheduler.take(now: 5).start.isEmpty, "cap of 2 in flight")
        scheduler.finish("a", .success(lifetime: 200), now: 5)
        #expect(scheduler.take(now: 5).start == ["c"])
    }

    /// A device removed while in flight keeps its place among the concurrent requests until its
    /// call ends (the call is still out); an abandoned call frees it, and the probe's during an
    /// outage. Nothing is planned for an abandoned device until it is scheduled again.
    @Test func anAbandonedRefreshFreesItsPlaceAndTheProbe() throws {
        let scheduler = RefreshScheduler(settings: settings(concurrency: 1), devices: Self.devices, random: { 0.5 })
        scheduler.schedule("a", at: 0)
        scheduler.schedule("b", at: 0)
        #expect(scheduler.take(now: 1).start == ["a"])
        scheduler.remove("a")
        #expect(scheduler.take(now: 1).start.isEmpty, "a's call is still out")
        scheduler.abandon("a")
        #expect(scheduler.take(now: 1).start == ["b"], "a's place is free")
        #expect(scheduler.nextAttempt(of: "a", now: 1) == nil)
        scheduler.finish("b", .gatewayUnavailable, now: 1)
        scheduler.schedule("a", at: 1)
        let outage = try #require(scheduler.outage)
        let probe = scheduler.take(now: outage.nextProbeAt).start
        #expect(probe.count == 1)
        #expect(scheduler.take(now: outage.nextProbeAt).start.isEmpty, "one probe at a time")
        scheduler.abandon(probe[0])
        #expect(scheduler.take(now: outage.nextProbeAt).start.count == 1, "the probe's place is free")
    }

    @Test func successSchedulesTheJitteredIntervalScaledToShortLifetimes() {
        var random = 0.0
        let scheduler = RefreshScheduler(settings: settings(), devices: Self.devices, random: { random })
        scheduler.schedule("a", at: 0)
        _ = scheduler.take(now: 0)
        #expect(scheduler.finish("a", .success(lifetime: 200), now: 10) == 10 + 90)
        random = 0.999_999
        _ = scheduler.take(now: 100)
        #expect(abs(scheduler.finish("a", .success(lifetime: 200), now: 100) - (100 + 110)) < 0.001)
        _ = scheduler.take(now: 210)
        #expect(abs(scheduler.finish("a", .success(lifetime: 50), now: 210) - (210 + 110 * 0.25)) < 0.001)
    }

    @Test func rateLimitSpreadsAFillOverTime() {
        let scheduler = RefreshScheduler(settings: settings(concurrency: 100, rate: 10), devices: Self.devices, random: { 0.5 })
        for index in 0..<25 { scheduler.schedule("d\(index)", at: 0) }
        let first = scheduler.take(now: 0)
        #expect(first.start.count == 10)
        #expect(first.wake == 1.1, "one second plus the 10% jitter guard")
        #expect(scheduler.take(now: 0.5).start.isEmpty)
        #expect(scheduler.take(now: 1.05).start.isEmpty)
        #expect(scheduler.take(now: 1.1).start.count == 10)
        #expect(scheduler.take(now: 2.2).start.count == 5)
    }

    /// A reload (new settings) in the middle of a fill keeps the limiter's history: the starts
    /// already made still count against the sliding second.
    @Test func newSettingsKeepTheRateLimitersHistory() {
        let scheduler = RefreshScheduler(settings: settings(concurrency: 100, rate: 10), devices: Self.devices, random: { 0.5 })
        for index in 0..<40 { scheduler.schedule("d\(index)", at: 0) }
        #expect(scheduler.take(now: 0).start.count == 10)
        scheduler.update(settings(concurrency: 100, rate: 10))
        #expect(scheduler.take(now: 0.2).start.isEmpty, "the 10 starts at 0 still fill the window")
        scheduler.update(settings(concurrency: 100, rate: 5))
        #expect(scheduler.take(now: 0.5).start.isEmpty, "a lower rate counts the earlier starts too")
        let next = scheduler.take(now: 1.1)
        #expect(next.start.count == 5)
        scheduler.update(settings(concurrency: 100, rate: 20))
        #expect(scheduler.take(now: 1.15).start.count == 15, "a higher rate admits only the difference")
    }

    @Test func deviceLevelFailuresBackOffPerDevice() {
        let scheduler = RefreshScheduler(settings: settings(), devices: Self.devices, random: { 0 })
        scheduler.schedule("a", at: 0)
        var now = 0.0
        var delays: [Double] = []
        for _ in 0..<8 {
            _ = scheduler.take(now: now)
            let next = scheduler.finish("a", .deviceRetryable, now: now)
            delays.append(next - now)
            now = next
        }
        #expect(delays == [1, 1, 2, 4, 8, 16, 30, 30], "equal jitter at random 0: half of min·2^(n-1), capped at 60")
        #expect(scheduler.outage == nil)
    }

    @Test func rejectedDevicesWaitTheFullInterval() {
        let scheduler = RefreshScheduler(settings: settings(), devices: Self.devices, random: { 0.5 })
        scheduler.schedule("a", at: 0)
        _ = scheduler.take(now: 0)
        #expect(scheduler.finish("a", .rejected, now: 3) == 103)
    }

    @Test func anOutageProbesOncePerBackoffPeriodThenRefreshesEveryDueDevice() {
        let scheduler = RefreshScheduler(settings: settings(concurrency: 4, rate: 100), devices: Self.devices, random: { 0.999 })
        for index in 0..<20 { scheduler.schedule("d\(index)", at: 0) }
        var now = 0.0
        let firstWave = scheduler.take(now: now).start
        #expect(firstWave.count == 4)
        for id in firstWave { scheduler.finish(id, .gatewayUnavailable, now: now) }
        #expect(scheduler.outage?.failures == 1)

        // During the outage: one probe at a time, at most one per backoff period.
        var probes = 0
        while now < 300 {
            let (start, wake) = scheduler.take(now: now)
            #expect(start.count <= 1)
            if let probe = start.first {
                probes += 1
                scheduler.finish(probe, .gatewayUnavailable, now: now)
            } else {
                now = wake ?? now + 1
            }
        }
        #expect(probes >= 5 && probes <= 12, "\(probes) probes in 300 s with backoff 1..60")
        #expect(scheduler.outage!.failures > 5)

        // The first answer ends the outage; everything due goes out, within the concurrency cap.
        let probe = scheduler.take(now: now).start
        #expect(probe.count <= 1)
        if probe.isEmpty { now = scheduler.take(now: now).wake! }
        let next = probe.first ?? scheduler.take(now: now).start[0]
        scheduler.finish(next, .success(lifetime: 200), now: now)
        #expect(scheduler.outage == nil)
        #expect(scheduler.take(now: now).start.count == 4)
    }

    /// A pass over every device by position (the status summary) sees what asking by id sees:
    /// planned, in flight, held back by an outage, or nothing planned. A start plans by position.
    @Test func nextAttemptByPositionIsNextAttemptById() {
        let devices = Self.devices
        let scheduler = RefreshScheduler(settings: settings(concurrency: 3), devices: devices, random: { 0.5 })
        scheduler.start((0..<devices.count).filter { $0 % 4 != 3 }.map { (slot: $0, deadline: Double($0 % 7), failures: $0 % 5 == 0 ? 2 : 0) }, of: devices)
        #expect(scheduler.failures[devices.id(at: 5)] == 2 && scheduler.failures[devices.id(at: 1)] == nil)
        func expectSame(_ now: Double, _ moment: String) {
            for slot in 0..<devices.count {
                let id = devices.id(at: slot)
                #expect(scheduler.nextAttempt(atSlot: slot, of: devices, now: now) == scheduler.nextAttempt(of: id, now: now), "\(id), \(moment)")
            }
        }
        expectSame(0, "as planned")
        #expect(scheduler.nextAttempt(atSlot: 3, of: devices, now: 0) == nil, "nothing planned")
        let started = scheduler.take(now: 0).start
        #expect(started.count == 3)
        expectSame(0, "three in flight")
        #expect(started.allSatisfy { scheduler.nextAttempt(atSlot: devices.position(of: $0)!, of: devices, now: 0.5) == 0.5 }, "in flight: now")
        for id in started { scheduler.finish(id, .gatewayUnavailable, now: 0) }
        #expect(scheduler.outage != nil)
        expectSame(1, "an outage")
    }

    @Test func nextAttemptDuringAnOutageIsTheNextProbe() {
        let scheduler = RefreshScheduler(settings: settings(), devices: Self.devices, random: { 0.5 })
        scheduler.schedule("a", at: 0)
        scheduler.schedule("b", at: 0)
        let started = scheduler.take(now: 0).start
        for id in started { scheduler.finish(id, .gatewayUnavailable, now: 0) }
        let probeAt = scheduler.outage!.nextProbeAt
        #expect(scheduler.nextAttempt(of: "a", now: 0) == probeAt)
        #expect(scheduler.nextAttempt(of: "b", now: 0) == probeAt)
    }

    @Test func localFailuresDoNotEndAnOutage() {
        let scheduler = RefreshScheduler(settings: settings(), devices: Self.devices, random: { 0.5 })
        scheduler.schedule("a", at: 0)
        scheduler.schedule("b", at: 0)
        _ = scheduler.take(now: 0)
        scheduler.finish("a", .gatewayUnavailable, now: 0)
        scheduler.finish("b", .localFailure, now: 0)
        #expect(scheduler.outage != nil)
    }

    @Test func deadlineHeapKeepsTheLatestDeadlinePerKey() {
        var heap = DeadlineHeap(keys: .named((0..<100).map { "k\($0)" }))
        for index in 0..<1000 { heap.set("k\(index % 100)", Double(1000 - index)) }
        #expect(heap.count == 100)
        var last = -Double.infinity
        var popped = 0
        while let entry = heap.pop() {
            #expect(entry.deadline >= last)
            last = entry.deadline
            popped += 1
        }
        #expect(popped == 100)
    }

    @Test func deadlineHeapMatchesAReferenceUnderRandomSetsRemovesAndPops() {
        var heap = DeadlineHeap(keys: .named((0..<300).map { "k\($0)" }))
        var reference: [String: Double] = [:]
        var generator = SeededGenerator(seed: 20_261_203)
        for _ in 0..<20_000 {
            let key = "k\(Int.random(in: 0..<300, using: &generator))"
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<6:
                let deadline = Double(Int.random(in: 0..<1000, using: &generator))
                heap.set(key, deadline)
                reference[key] = deadline
            case 6..<8:
                heap.remove(key)
                reference[key] = nil
            default:
                let expected = reference.min { ($0.value, $0.key) < ($1.value, $1.key) }
                let popped = heap.pop()
                #expect(popped?.key == expected?.key && popped?.deadline == expected?.value)
                if let expected { reference[expected.key] = nil }
            }
            #expect(heap.count == reference.count)
            #expect(heap.deadline(of: key) == reference[key])
        }
    }

    /// A reload's new device table: every key still in it keeps its deadline wherever it now
    /// stands, the others lose theirs, new keys can be set, and the order holds.
    @Test func aHeapFollowsANewDeviceTableByKey() {
        var heap = DeadlineHeap(keys: .named(["a", "b", "c", "d"]))
        for (key, deadline) in [("a", 4.0), ("b", 1.0), ("c", 3.0), ("d", 2.0)] { heap.set(key, deadline) }
        heap.rekey(.named(["e", "d", "a", "b"]))
        #expect(heap.count == 3 && heap.deadline(of: "c") == nil && heap.deadline(of: "a") == 4 && heap.deadline(of: "d") == 2)
        heap.remove("c")
        heap.set("e", 0)
        #expect(heap.pop()! == ("e", 0) && heap.pop()! == ("b", 1) && heap.pop()! == ("d", 2) && heap.pop()! == ("a", 4) && heap.pop() == nil)
    }

    /// Random reloads: after each new table (kept keys shuffled, some dropped, new ones added)
    /// the heap holds exactly the kept keys' deadlines and pops them in order.
    @Test func aHeapMatchesAReferenceThroughRandomReloads() {
        var generator = SeededGenerator(seed: 4_12_2026)
        var ids = (0..<60).map { "k\($0)" }
        var heap = DeadlineHeap(keys: .named(ids))
        var reference: [String: Double] = [:]
        for round in 0..<40 {
            for _ in 0..<30 {
                let key = ids[Int.random(in: 0..<ids.count, using: &generator)]
                let deadline = Double(Int.random(in: 0..<50, using: &generator))
                heap.set(key, deadline)
                reference[key] = deadline
            }
            ids = ids.filter { _ in Int.random(in: 0..<5, using: &generator) > 0 }.shuffled(using: &generator) + (0..<5).map { "r\(round)-\($0)" }
            heap.rekey(.named(ids))
            reference = reference.filter { ids.contains($0.key) }
            #expect(heap.count == reference.count)
            for id in ids { #expect(heap.deadline(of: id) == reference[id]) }
        }
        let expected = reference.sorted { ($0.value, $0.key) < ($1.value, $1.key) }
        var popped: [(String, Double)] = []
        while let entry = heap.pop() { popped.append(entry) }
        #expect(popped.map(\.0) == expected.map(\.key) && popped.map(\.1) == expected.map(\.value))
    }

    /// A start builds the heaps in one go: the result must be the heap the same entries set one
    /// by one would give — same order (ties by key), and every position right for what follows.
    @Test func aHeapBuiltAtOnceBehavesLikeOneBuiltByInsertions() {
        var generator = SeededGenerator(seed: 3_12_2026)
        for size in [0, 1, 2, 3, 7, 64, 1000] {
            let entries = (0..<size).map { (key: "k\($0)", deadline: Double(Int.random(in: 0..<20, using: &generator))) }
            let keys = DeviceTable.named(entries.map(\.key))
            var built = DeadlineHeap(keys: keys, entries)
            var inserted = DeadlineHeap(keys: keys)
            for entry in entries { inserted.set(entry.key, entry.deadline) }
            #expect(built.count == size)
            for entry in entries { #expect(built.deadline(of: entry.key) == entry.deadline) }
            // Moves and removals find each key where the build left it.
            for _ in 0..<(size / 2) {
                let key = "k\(Int.random(in: 0..<size, using: &generator))"
                if Bool.random(using: &generator) {
                    let deadline = Double(Int.random(in: 0..<20, using: &generator))
                    built.set(key, deadline)
                    inserted.set(key, deadline)
                } else {
                    built.remove(key)
                    inserted.remove(key)
                }
            }
            while let expected = inserted.pop() {
                let popped = built.pop()
                #expect(popped?.key == expected.key && popped?.deadline == expected.deadline, "size \(size)")
            }
            #expect(built.pop() == nil)
        }
    }
}
