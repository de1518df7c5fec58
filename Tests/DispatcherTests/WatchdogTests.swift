import Broker
import FulfillmentMetrics
import Messaging
import MetricsTestKit
import SagaDomain
import StoreDatabase
import TestSupport
import Testing
@testable import Dispatcher

/// When the watchdog calls an order stuck, on both store backends.
@Suite struct WatchdogTests {
    let temporary = TemporaryDirectory("watchdog")
    let configuration = SagaConfiguration()

    /// A worker killed on a cluster keeps its partitions for its group's session timeout,
    /// and the whole group pauses to rebalance: nothing is lost, the step only stops. An
    /// order queued there past the step's worst case and the grace is not stuck yet; it is
    /// once the failover time has passed too. (With budgets shorter than that, a chaos run
    /// on Kafka compensated, then parked, most of its orders.)
    @Test(arguments: StoreBackend.allCases) func anOrderIsNotStuckBeforeACrashedWorkersPartitionsCouldMove(_ backend: StoreBackend) async throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (broker, store) = (fixture.broker, fixture.store)
        let requests = configuration.topics.requested(.payment)
        try await broker.createTopic(TopicSpec(name: requests, partitions: 1))
        let since: Int64 = 1_000_000
        try store.connection.run(
            "INSERT INTO orders (order_id, body, amount_cents, units, tier, priority, state, created_at, updated_at) VALUES ('o-1', ?, 4200, 1, 'standard', 'standard', 'payment', ?, ?)",
            [.blob(DispatcherDecisionTests.orderJSON("o-1")), .integer(since), .integer(since)])
        try store.connection.run("INSERT INTO open_orders VALUES ('o-1')")
        let watchdog = fixture.watchdog(configuration)

        let worstCaseAndGrace = Int64((configuration[.payment].budgetSeconds + configuration.watchdogGraceSeconds) * 1000)
        #expect(Watchdog.memberFailoverSeconds == 10)
        #expect(watchdog.budgetMilliseconds(.payment) == worstCaseAndGrace + 10_000)
        #expect(try await watchdog.sweep(now: since + worstCaseAndGrace + 5_000) == 0, "within the failover time: still waiting")
        #expect(try await broker.describeTopic(requests).partitions[0].endOffset == 0)

        #expect(try await watchdog.sweep(now: since + worstCaseAndGrace + 10_001) == 1, "past it: stuck, its request published again")
        let republished = try await broker.read(topic: requests, partition: 0, from: 0, maxRecords: 10)
        #expect(republished.map(\.keyString) == ["o-1"])
        #expect(republished.first?.header(SagaHeader.recoveredBy) == "watchdog")
    }

    /// An order the intake accepted whose payment request never reached the log (a chaos run
    /// on librdkafka's mock cluster lost one so, acknowledged) is invisible to the sweep, which
    /// walks the tracker's orders. The watchdog looks at each acceptance once, past the payment
    /// step's budget, and publishes the request again for one the tracker never saw start.
    @Test(arguments: StoreBackend.allCases) func anAcceptedOrderThatNeverStartedIsRequestedAgain(_ backend: StoreBackend) async throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (broker, store) = (fixture.broker, fixture.store)
        let topics = configuration.topics
        for name in [topics.requested(.payment), topics.requested(.payment, priority: .vip)] { try await broker.createTopic(TopicSpec(name: name, partitions: 1)) }
        let accepted: Int64 = 5_000_000
        let budget = Watchdog.budgetMilliseconds(.payment, configuration)
        func submit(_ id: String, tier: String = "standard", at: Int64?, source: String? = nil) throws {
            _ = try store.intake.run("INSERT INTO submitted (order_id, body, created_at, accepted_at, source) VALUES (?, ?, 900, ?, ?)",
                                     [.text(id), .blob(DispatcherDecisionTests.orderJSON(id, tier: tier)), at.map { .integer($0) } ?? .null, source.map { .text($0) } ?? .null])
        }
        try submit("lost", at: accepted, source: "orders/3/41")
        try submit("lost-vip", tier: "vip", at: accepted + 1)
        try submit("started", at: accepted + 2)
        try submit("recent", at: accepted + budget)
        try submit("from-an-older-version", at: nil)
        try store.connection.run(
            "INSERT INTO orders (order_id, body, amount_cents, units, tier, priority, state, created_at, updated_at) VALUES ('started', ?, 1000, 1, 'standard', 'standard', 'payment', 900, 900)",
            [.blob(DispatcherDecisionTests.orderJSON("started"))])
        let watchdog = fixture.watchdog(configuration)

        // The tracker is behind: the standard payment topic holds a request it has not recorded.
        let standardRequests = TopicPartition(topics.requested(.payment), 0)
        _ = try await broker.produce([ProducerRecord(topic: standardRequests.topic, partition: 0, key: Array("other".utf8), value: [1])])
        try await broker.commitOffsets(group: SagaTracker.group, [standardRequests: 0, TopicPartition(topics.requested(.payment, priority: .vip), 0): 0])
        try await broker.createTopic(TopicSpec(name: topics.orders, partitions: 4))
        _ = try await broker.produce((0..<50).map { _ in ProducerRecord(topic: topics.orders, partition: 3, key: nil, value: [1]) })
        try await broker.commitOffsets(group: SagaGroups.intake, [TopicPartition(topics.orders, 3): 41])
        var check = AcceptanceCheck()
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 10) == 0, "suspects, while the tracker may still record them")
        #expect(check.checkedUpTo == accepted + 2)
        _ = try store.connection.run(DispatcherStore.raiseTrackerOffset, [.text(standardRequests.topic), .integer(0), .integer(1)])
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 20) == 1, "the tracker passed where the topics ended: the order without a source is decided")
        // "lost" waits for the intake to commit past where it read it (orders/3/41).
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 30) == 0, "the intake may still read it again and publish its request")
        try await broker.commitOffsets(group: SagaGroups.intake, [TopicPartition(topics.orders, 3): 42])
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 40) == 0, "past it, but the tracker has not recorded the VIP request published since")
        _ = try store.connection.run(DispatcherStore.raiseTrackerOffset, [.text(topics.requested(.payment, priority: .vip)), .integer(0), .integer(1)])
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 50) == 1, "decided")
        #expect(check.checkedUpTo == accepted + 2, "the acceptances past the budget were looked at; the recent one waits")
        let standard = try await broker.read(topic: topics.requested(.payment), partition: 0, from: 1, maxRecords: 10)
        let vip = try await broker.read(topic: topics.requested(.payment, priority: .vip), partition: 0, from: 0, maxRecords: 10)
        #expect(standard.map(\.keyString) == ["lost"])
        #expect(vip.map(\.keyString) == ["lost-vip"], "a VIP order's request goes on the priority topic, as the intake's did")
        #expect(standard.first?.header(SagaHeader.recoveredBy) == "watchdog")
        #expect(standard.first?.header(SagaHeader.idempotencyKey) == IdempotencyKey.step("lost", .payment), "the intake's key: a late original is a duplicate")
        #expect(standard.first?.value == DispatcherDecisionTests.orderJSON("lost"))
        // Where the intake read it, for the order's `accepted` history row; a row an older
        // version stored has no source, and its request goes without one.
        #expect(standard.first?.header(SagaHeader.sourcePosition) == "orders/3/41")
        #expect(vip.first.map { $0.header(SagaHeader.sourcePosition) == nil } == true)

        // Each acceptance once: from where it stopped, only the recent one is new, and it started.
        _ = try store.connection.run(
            "INSERT INTO orders (order_id, body, amount_cents, units, tier, priority, state, created_at, updated_at) VALUES ('recent', ?, 1000, 1, 'standard', 'standard', 'payment', 900, 900)",
            [.blob(DispatcherDecisionTests.orderJSON("recent"))])
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + 2 * budget) == 0)
        #expect(check.checkedUpTo == accepted + budget)
        #expect(try await broker.describeTopic(topics.requested(.payment)).partitions[0].endOffset == 2, "nothing published twice")
    }

    /// A suspect waits for every partition of the payment topics, not only those the tracker's
    /// group committed to: a Kafka cluster's lag lists only those (the embedded broker's, every
    /// partition of a topic with one), and the tracker reads from its store's offsets. Here
    /// its group committed nothing yet, and the order's request waits, unrecorded, on
    /// partition 1: the order is not lost. It was, before: requested again at once.
    @Test(arguments: StoreBackend.allCases) func aSuspectWaitsForPaymentPartitionsTheTrackerNeverCommitted(_ backend: StoreBackend) async throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (broker, store) = (fixture.broker, fixture.store)
        let topics = configuration.topics
        try await broker.createTopic(TopicSpec(name: topics.requested(.payment), partitions: 2))
        try await broker.createTopic(TopicSpec(name: topics.requested(.payment, priority: .vip), partitions: 1))
        let accepted: Int64 = 5_000_000
        let budget = Watchdog.budgetMilliseconds(.payment, configuration)
        _ = try store.intake.run("INSERT INTO submitted (order_id, body, created_at, accepted_at) VALUES ('waiting', ?, 900, ?)",
                                 [.blob(DispatcherDecisionTests.orderJSON("waiting")), .integer(accepted)])
        let p0 = TopicPartition(topics.requested(.payment), 0)
        let p1 = TopicPartition(topics.requested(.payment), 1)
        _ = try await broker.produce([ProducerRecord(topic: p0.topic, partition: 0, key: Array("other".utf8), value: [1])])
        _ = try await broker.produce([ProducerRecord(topic: p1.topic, partition: 1, key: Array("waiting".utf8), value: DispatcherDecisionTests.orderJSON("waiting"))])
        _ = try store.connection.run(DispatcherStore.raiseTrackerOffset, [.text(p0.topic), .integer(0), .integer(1)])
        let watchdog = fixture.watchdog(configuration)
        var check = AcceptanceCheck()
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 10) == 0)
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 20) == 0, "the tracker has not read partition 1 yet")
        #expect(try await broker.describeTopic(p1.topic).partitions[1].endOffset == 1, "nothing published again")
        // Once the tracker has read partition 1 and still has no row, the order is lost.
        _ = try store.connection.run(DispatcherStore.raiseTrackerOffset, [.text(p1.topic), .integer(1), .integer(1)])
        #expect(try await watchdog.reconcileAccepted(&check, now: accepted + budget + 30) == 1)
    }

    /// The tracker's backlog, which the watchdog waits out before calling orders stuck, counts
    /// every partition of the tracker's topics from the store's offsets: its group has no
    /// member and no commit here, and counted from the group's lag it was 0.
    @Test(arguments: StoreBackend.allCases) func theTrackersBacklogCountsPartitionsItsGroupNeverCommittedOn(_ backend: StoreBackend) async throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (broker, store) = (fixture.broker, fixture.store)
        let requests = configuration.topics.requested(.inventory)
        try await broker.createTopic(TopicSpec(name: requests, partitions: 2))
        _ = try await broker.produce((0..<5).map { ProducerRecord(topic: requests, partition: $0 % 2, key: nil, value: [UInt8($0)]) })
        _ = try store.connection.run(DispatcherStore.raiseTrackerOffset, [.text(requests), .integer(0), .integer(2)])
        let watchdog = fixture.watchdog(configuration)
        #expect(try await watchdog.trackerBacklog().records == 3, "partition 0 recorded up to 2 of 3 records, partition 1 none of 2")
        #expect(try await watchdog.trackerBacklog().readable == 3)
        // A retry tier's records wait for their delay: in the backlog, not readable yet.
        let retries = configuration.topics.retry(.inventory, tier: 1)
        try await broker.createTopic(TopicSpec(name: retries, partitions: 1, deliveryDelayMilliseconds: 60_000))
        _ = try await broker.produce([ProducerRecord(topic: retries, partition: 0, key: nil, value: [1])])
        let backlog = try await watchdog.trackerBacklog()
        #expect(backlog.records == 4)
        #expect(backlog.readable == 3)
    }

    /// The watchdog judges orders only on a current tracker: not while it catches up (more
    /// than a batch behind), nor while it is stalled (records it could read wait, and it
    /// recorded nothing since the last look: a dispatcher restarted on Kafka waits for its
    /// groups' partitions while the workers go on). Once current again, orders get a whole
    /// budget of running time from then on.
    @Test func theWatchdogWaitsForATrackerThatCatchesUpOrIsStalled() {
        let p = TopicPartition("payment.completed", 0)
        var watch = TrackerWatch(runningSince: 100)
        #expect(watch.observe(TrackerBacklog(records: 5, readable: 5, recorded: [p: 10]), now: 1_000) == .current, "a first look cannot tell a stall")
        #expect(watch.observe(TrackerBacklog(records: 3, readable: 3, recorded: [p: 12]), now: 2_000) == .current, "behind a little, and recording")
        #expect(watch.observe(TrackerBacklog(records: 4, readable: 4, recorded: [p: 12]), now: 3_000) == .startedWaiting("to record again"))
        #expect(watch.observe(TrackerBacklog(records: 9, readable: 9, recorded: [p: 12]), now: 4_000) == .waiting)
        #expect(watch.runningSince == 100)
        #expect(watch.observe(TrackerBacklog(records: 0, readable: 0, recorded: [p: 21]), now: 5_000) == .current)
        #expect(watch.runningSince == 5_000, "the wait does not count against any order")
        #expect(watch.observe(TrackerBacklog(records: 2, readable: 0, recorded: [p: 21]), now: 6_000) == .current, "records waiting for a retry delay are not a stall")
        let behind = Watchdog.trackerBacklogLimit + 1
        #expect(watch.observe(TrackerBacklog(records: behind, readable: behind, recorded: [p: 30]), now: 7_000) == .startedWaiting("to catch up"))
        #expect(watch.observe(TrackerBacklog(records: 10, readable: 10, recorded: [p: 40]), now: 8_000) == .current)
        #expect(watch.runningSince == 8_000)
    }

    /// An order without a tracker row is only a suspect while the tracker may be behind (after
    /// a restart it catches up for a while, and every order it has not reached yet has no
    /// row): it is decided once the tracker has recorded the payment topics up to where they
    /// ended when it was found. (Deciding at once re-requested 949 of 1,000 orders in a chaos
    /// run whose dispatcher had restarted.)
    @Test func aSuspectWaitsForTheTrackerToPassWhereThePaymentTopicsEnded() {
        var check = AcceptanceCheck()
        let p0 = TopicPartition("payment.requested", 0), p1 = TopicPartition("payment.requested.priority", 0)
        check.suspect([("o-1", nil)])
        #expect(check.due(recorded: [p0: 100, p1: 100]).isEmpty, "not given the topics' ends yet")
        check.intakePassed([:], paymentTopicsEnds: [p0: 10, p1: 3])
        #expect(check.due(recorded: [:]).isEmpty, "a tracker with no offsets yet is behind")
        #expect(check.due(recorded: [p0: 10, p1: 2]).isEmpty, "behind on one topic")
        check.suspect([("o-2", nil)])
        check.intakePassed([:], paymentTopicsEnds: [p0: 12, p1: 3])
        let first = check.due(recorded: [p0: 11, p1: 3])
        #expect(first.map(\.id) == ["o-1"], "each suspect waits for its own ends")
        #expect(check.due(recorded: [p0: 11, p1: 3]).isEmpty, "decided once")
        check.suspectAgain(first)
        #expect(check.due(recorded: [p0: 11, p1: 3]).map(\.id) == ["o-1"], "a decision that failed is taken again")
        #expect(check.due(recorded: [p0: 12, p1: 5]).map(\.id) == ["o-2"])
        #expect(!check.hasSuspects)
    }

    /// An intake that stored an order's acceptance and died before publishing its request reads
    /// the order again and publishes the request itself: a suspect read from `orders/0/5`
    /// waits until the intake's commit on that partition passes 5 (or the record is no longer
    /// in the log, where nothing reads it again), and then for the tracker to
    /// pass where the payment topics ended at that moment (so the request the intake published
    /// again before committing is seen), not where they ended when it was found.
    @Test func aSuspectTheIntakeWillReadAgainWaitsForItsCommitThenForTheTracker() {
        var check = AcceptanceCheck()
        let orders0 = TopicPartition("orders", 0), requests = TopicPartition("payment.requested", 0)
        check.suspect([("read-again", "orders/0/5"), ("no-source", nil), ("unreadable-source", "orders/x"), ("gone-from-the-log", "orders/0/2"), ("no-such-partition", "orders/7/5")])
        check.intakePassed([orders0: 5..<9], paymentTopicsEnds: [requests: 10])
        #expect(check.due(recorded: [requests: 10]).map(\.id) == ["no-source", "unreadable-source", "gone-from-the-log", "no-such-partition"])
        #expect(check.awaitsIntake)
        check.intakePassed([orders0: 6..<9], paymentTopicsEnds: [requests: 11])
        #expect(!check.awaitsIntake)
        #expect(check.due(recorded: [requests: 10]).isEmpty, "the request published again before the commit is at 10")
        #expect(check.due(recorded: [requests: 11]).map(\.id) == ["read-again"])
        #expect(!check.hasSuspects)
    }

    /// A store an older version made has `submitted` without `accepted_at` and `source`:
    /// opening it adds the columns, and its rows (NULL) are never taken for lost.
    @Test(arguments: StoreBackend.allCases) func anIntakeStoreFromBeforeAcceptedAtGetsTheColumn(_ backend: StoreBackend) throws {
        let location = try backend.freshLocation(directory: temporary.path + "/old")
        let old = try StoreConnection.open(location: location, name: "intake")
        try old.execute("CREATE TABLE submitted (order_id TEXT PRIMARY KEY, body BLOB NOT NULL, created_at INTEGER NOT NULL)")
        _ = try old.run("INSERT INTO submitted VALUES ('o-old', ?, 900)", [.blob([1])])
        let store = try DispatcherStore(location: location)
        _ = try store.intake.run("INSERT INTO submitted (order_id, body, created_at, accepted_at, source) VALUES ('o-new', ?, 900, 1000, 'orders/0/7')", [.blob([1])])
        let found = try store.acceptedNeverStarted(after: 0, upTo: 2_000)
        #expect(found.orders.map(\.id) == ["o-new"])
        #expect(found.orders.map(\.source) == ["orders/0/7"])
        #expect(found.lastLookedAt == 1000)
        #expect(try store.submittedOrders(["o-old", "o-new"]).sorted { $0.id < $1.id }.map(\.source) == ["orders/0/7", nil])
        _ = try DispatcherStore(location: location)  // and opening it again changes nothing
    }

    /// Pages never end inside a millisecond: the next page starts after the last one's time,
    /// and an intake batch stamps all its orders with one time.
    @Test(arguments: StoreBackend.allCases) func aPageOfAcceptancesTakesAMillisecondWhole(_ backend: StoreBackend) throws {
        let store = try DispatcherStore(location: try backend.freshLocation(directory: temporary.path + "/pages"))
        for (id, at) in [("a", 1), ("b", 2), ("c", 2), ("d", 3), ("e", 3), ("f", 3)] {
            _ = try store.intake.run("INSERT INTO submitted (order_id, body, created_at, accepted_at) VALUES (?, ?, 900, ?)", [.text(id), .blob([1]), .integer(Int64(at))])
        }
        var after: Int64 = 0
        var pages: [[String]] = []
        while true {
            let page = try store.acceptedNeverStarted(after: after, upTo: 10, limit: 2)
            guard let last = page.lastLookedAt else { break }
            pages.append(page.orders.map(\.id).sorted())
            after = last
        }
        #expect(pages == [["a"], ["b", "c"], ["d", "e", "f"]])
    }
}
