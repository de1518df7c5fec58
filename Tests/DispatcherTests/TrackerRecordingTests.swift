import Broker
import Foundation
import FulfillmentMetrics
import Messaging
import MetricsTestKit
import SagaDomain
import StoreDatabase
import TestSupport
import Testing
@testable import Dispatcher

/// How the tracker records what it reads, on both store backends.
@Suite struct TrackerRecordingTests {
    let temporary = TemporaryDirectory("tracker-recording")
    let configuration = SagaConfiguration()
    var topics: SagaTopics { configuration.topics }

    func record(_ topic: String, _ orderID: String, offset: Int64, at: Int64, headers: [RecordHeader] = []) -> ConsumerRecord {
        ConsumerRecord(topic: topic, partition: 0, offset: offset, timestamp: at, key: Array(orderID.utf8),
                       value: DispatcherDecisionTests.orderJSON(orderID), headers: headers)
    }

    /// The tracker reads every saga topic, so one order's events reach it in any order across
    /// topics (catching up, it can be far ahead on one topic). A later step's event read
    /// before the order's first one must still set the order's state, not wait for its next
    /// event.
    @Test(arguments: StoreBackend.allCases) func aLaterStepsEventReadFirstSetsTheOrdersState(_ backend: StoreBackend) throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (store, tracker) = (fixture.store, fixture.tracker)
        let consumed = ConsumedOffsets([])

        // The inventory request of o-1 comes first, alone in its batch.
        try tracker.record([record(topics.requested(.inventory), "o-1", offset: 0, at: 2_000)], consumed: consumed)
        let early = try #require(try store.order("o-1"), "the order is tracked from its first event read, whichever it is")
        #expect(early.state == OrderState.inventory.rawValue)
        #expect(early.createdAt == 2_000, "the submission time is not known yet")
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM open_orders WHERE order_id = 'o-1'") == 1)

        // Then the intake's payment request, which says when the order was submitted.
        let submitted = [RecordHeader(SagaHeader.createdAt, "1500"), RecordHeader(SagaHeader.sourcePosition, "orders/0/7")]
        try tracker.record([record(topics.requested(.payment), "o-1", offset: 0, at: 1_600, headers: submitted)], consumed: consumed)
        let later = try #require(try store.order("o-1"))
        #expect(later.state == OrderState.inventory.rawValue, "the earlier event does not take the order back")
        #expect(later.createdAt == 1_500, "the submission time is corrected")
        #expect(try store.history("o-1").map(\.event) == ["accepted", "requested", "requested"])
        #expect(try fixture.counted("accepted") == 1, "accepted once")

        // A retry of a step for an order never seen before, and an order's event after it is
        // final, which must change nothing.
        try tracker.record([
            record(topics.retry(.shipping, tier: 1), "o-2", offset: 0, at: 3_000),
            record(topics.completed, "o-3", offset: 0, at: 3_000),
        ], consumed: consumed)
        try tracker.record([record(topics.requested(.notification), "o-3", offset: 0, at: 3_100)], consumed: consumed)
        #expect(try store.order("o-2")?.state == OrderState.shipping.rawValue)
        #expect(try store.order("o-3")?.state == OrderState.completed.rawValue)
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM orders") == 3)
    }

    /// A dead letter and the manual-review record it causes carry the same time, and the
    /// tracker may read them in either order, in one batch or two: the order is parked
    /// whichever comes first. (With both in one batch, the dead letter's topic sorting after
    /// `orders.manual-review`, it stayed `compensating`, and the watchdog then recovered it.)
    /// A later event, such as a redrive's request, still moves a parked order on.
    @Test(arguments: StoreBackend.allCases) func anOrderParkedAtItsDeadLettersMillisecondStaysParked(_ backend: StoreBackend) throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (store, tracker) = (fixture.store, fixture.tracker)
        let consumed = ConsumedOffsets([])
        let requests = ["o-1", "o-2", "o-3"].enumerated().map { record(topics.requested(.payment), $1, offset: Int64($0), at: 1_000) }
        try tracker.record(requests, consumed: consumed)
        let parked = { (order: String, offset: Int64) in self.record(self.topics.manualReview, order, offset: offset, at: 2_000) }
        let dead = { (order: String, offset: Int64) in self.record(self.topics.deadLetter(.payment), order, offset: offset, at: 2_000) }

        // One batch, the manual-review record read first.
        try tracker.record([parked("o-1", 0), dead("o-1", 0)], consumed: consumed)
        // Two batches, in each order.
        try tracker.record([parked("o-2", 1)], consumed: consumed)
        try tracker.record([dead("o-2", 1)], consumed: consumed)
        try tracker.record([dead("o-3", 2)], consumed: consumed)
        try tracker.record([parked("o-3", 2)], consumed: consumed)
        for order in ["o-1", "o-2", "o-3"] {
            #expect(try store.order(order)?.state == OrderState.manualReview.rawValue, "\(order) is parked")
        }
        #expect(try fixture.counted("manual_review") == 3, "each parked once")

        // A redrive's request, later, moves it on.
        try tracker.record([record(topics.requested(.payment), "o-1", offset: 3, at: 3_000, headers: [RecordHeader(SagaHeader.redriven, "1")])], consumed: consumed)
        #expect(try store.order("o-1")?.state == OrderState.payment.rawValue)
    }

    /// The tracker keeps no second copy of a body the intake stored: its row's body is empty
    /// and the store gives the intake's. An order that reached the saga without the intake
    /// (a request published by hand) keeps its body in the tracker's row, however its first
    /// event is read.
    @Test(arguments: StoreBackend.allCases) func aBodyIsKeptOnceWithTheIntakeWhenTheIntakeHasIt(_ backend: StoreBackend) throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (store, tracker) = (fixture.store, fixture.tracker)
        let consumed = ConsumedOffsets([])
        for id in ["o-in", "o-late"] {
            try store.intake.run("INSERT INTO submitted (order_id, body, created_at) VALUES (?, ?, 1000)", [.text(id), .blob(DispatcherDecisionTests.orderJSON(id))])
        }
        try tracker.record([
            record(topics.requested(.payment), "o-in", offset: 0, at: 1_100),
            record(topics.requested(.payment), "o-by-hand", offset: 1, at: 1_100),
            // Read before its payment request: tracked from a later step's event.
            record(topics.requested(.shipping), "o-late", offset: 0, at: 1_200),
        ], consumed: consumed)
        let ownBody = { (id: String) in try store.connection.query("SELECT body FROM orders WHERE order_id = ?", [.text(id)]) { $0.blob(0) }.first }
        #expect(try ownBody("o-in") == [], "the intake has it")
        #expect(try ownBody("o-late") == [], "the intake has it")
        #expect(try ownBody("o-by-hand") == DispatcherDecisionTests.orderJSON("o-by-hand"))
        for id in ["o-in", "o-late", "o-by-hand"] {
            #expect(try store.body(of: id) == DispatcherDecisionTests.orderJSON(id), "\(id)")
        }
        #expect(try store.body(of: "o-unknown") == nil)
        let bodies = try store.bodies([("o-in", []), ("o-by-hand", Array("own".utf8))])
        #expect(bodies == ["o-in": DispatcherDecisionTests.orderJSON("o-in"), "o-by-hand": Array("own".utf8)])
    }

    /// A run counts its orders by state from indexes alone (`orderCounts`): those counts must
    /// be what grouping the orders themselves says, in every state and only in the scope.
    @Test(arguments: StoreBackend.allCases) func orderCountsFromIndexesAgreeWithTheOrdersThemselves(_ backend: StoreBackend) throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (store, tracker) = (fixture.store, fixture.tracker)
        let consumed = ConsumedOffsets([])
        let events: [(topic: String, orderID: String)] = [
            (topics.requested(.payment), "o-a-1"), (topics.completed, "o-a-1"),
            (topics.requested(.payment), "o-a-2"), (topics.compensation, "o-a-2"), (topics.compensated, "o-a-2"),
            (topics.requested(.payment), "o-a-3"), (topics.compensation, "o-a-3"), (topics.manualReview, "o-a-3"),
            (topics.requested(.payment), "o-a-4"),
            (topics.requested(.shipping), "o-a-5"), (topics.compensation, "o-a-5"),
            (topics.requested(.payment), "o-b-1"), (topics.completed, "o-b-1"),
            (topics.requested(.payment), "o-b-2"), (topics.compensation, "o-b-2"), (topics.compensated, "o-b-2"),
        ]
        for (index, event) in events.enumerated() {
            try tracker.record([record(event.topic, event.orderID, offset: Int64(index), at: 1_000 + Int64(index))], consumed: consumed)
        }
        typealias Scope = (sql: String, values: [SQLValue])
        let runA: Scope = ("order_id >= ? AND order_id < ?", [.text("o-a-"), .text("o-a-\u{FFFF}")])
        let all: Scope = ("1 = 1", [])
        for scope in [runA, all] {
            let grouped = Dictionary(uniqueKeysWithValues: try store.connection.query(
                "SELECT state, COUNT(*) FROM orders WHERE \(scope.sql) GROUP BY state", scope.values) { ($0.text(0), Int($0.int(1))) })
            let counts = try store.orderCounts(where: scope)
            #expect(counts.tracked == grouped.values.reduce(0, +))
            #expect(counts.completed == grouped["completed", default: 0])
            #expect(counts.compensated == grouped["compensated", default: 0])
            #expect(counts.parked == grouped["manual_review", default: 0])
            #expect(counts.inFlight == grouped.filter { !OrderState(rawValue: $0.key)!.isTerminal }.values.reduce(0, +))
        }
        #expect(try store.orderCounts(where: runA) == DispatcherStore.OrderCounts(tracked: 5, open: 3, compensated: 1, parked: 1))
        #expect(try store.orderCounts(where: all).completed == 2)
    }

    /// A batch whose transaction committed while the tracker was told it failed (a
    /// PostgreSQL connection dropped before the commit's reply) is applied again, with the
    /// offsets in memory still behind the store: nothing may be recorded twice.
    @Test(arguments: StoreBackend.allCases) func aBatchRecordedAgainAfterALostCommitReplyAddsNothing(_ backend: StoreBackend) throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (store, tracker) = (fixture.store, fixture.tracker)
        let submitted = [RecordHeader(SagaHeader.createdAt, "900"), RecordHeader(SagaHeader.sourcePosition, "orders/0/3")]
        let batch = [
            record(topics.requested(.payment), "o-1", offset: 0, at: 1_000, headers: submitted),
            record(topics.requested(.inventory), "o-1", offset: 0, at: 1_100),
            record(topics.completed, "o-1", offset: 0, at: 1_200),
        ]
        try tracker.record(batch, consumed: ConsumedOffsets([]))
        let history = try store.history("o-1").map(\.event)
        #expect(history == ["accepted", "requested", "requested", "completed"])

        // The same batch again, the memory knowing nothing of the commit, and then the batch
        // with one new record after it.
        #expect(try tracker.record(batch, consumed: ConsumedOffsets([])) == 0)
        try tracker.record(batch + [record(topics.requested(.payment), "o-2", offset: 1, at: 1_300)], consumed: ConsumedOffsets([]))
        #expect(try store.history("o-1").map(\.event) == history, "nothing recorded twice")
        #expect(try store.history("o-2").map(\.event) == ["requested"])
        #expect(try fixture.counted("accepted") == 2, "each order accepted once")
        #expect(try fixture.counted("completed") == 1)
    }

    /// The saga's topics on a real broker, events appended to them with the tracker's group
    /// committed past each, as a store that is behind, lost, or new to this log finds them.
    struct LogAhead {
        let fixture: TrackerFixture
        let topics: SagaTopics

        init(_ backend: StoreBackend, in temporary: TemporaryDirectory, configuration: SagaConfiguration) async throws {
            fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
            topics = configuration.topics
            for topic in SagaTracker.topics(configuration) { try await fixture.broker.createTopic(TopicSpec(name: topic, partitions: 1)) }
        }

        /// Appends the events, and commits the tracker's group past them.
        func append(_ events: [(topic: String, orderID: String)]) async throws {
            let metadata = try await fixture.broker.produce(events.map { event($0.topic, $0.orderID) })
            try await fixture.broker.commitOffsets(group: "tracker", Dictionary(metadata.map { (TopicPartition($0.topic, $0.partition), $0.offset + 1) }, uniquingKeysWith: max))
        }

        func event(_ topic: String, _ orderID: String) -> ProducerRecord {
            let headers = topic == topics.requested(.payment)
                ? [RecordHeader(SagaHeader.createdAt, "900"), RecordHeader(SagaHeader.sourcePosition, "orders/0/\(orderID.filter(\.isNumber))")] : []
            return ProducerRecord(topic: topic, partition: 0, key: Array(orderID.utf8), value: DispatcherDecisionTests.orderJSON(orderID), headers: headers)
        }

        /// Prepares `store` as the dispatcher does before its services start, runs a tracker
        /// on it until `done` holds (at most 20 s), then stops it.
        func runTracker(on store: DispatcherStore? = nil, configuration: SagaConfiguration, until done: @escaping (DispatcherStore) throws -> Bool) async throws {
            let store = store ?? fixture.store
            try await SagaTracker.prepareStore(store, location: fixture.location, broker: fixture.broker)
            let tracker = SagaTracker(broker: fixture.broker, store: store, configuration: configuration, logger: fixture.logger)
            let running = Task { try await tracker.run() }
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline, !(try done(store)) { try await Task.sleep(for: .milliseconds(50)) }
            running.cancel()
            try await running.value
        }
    }

    /// The tracker's store behind its group's commits (restored from a backup): the tracker
    /// reads from where its store stopped, so the events between are recorded, not skipped as
    /// the group's commits would have them; a topic that had no event when the backup was
    /// taken is read from its start.
    @Test(arguments: StoreBackend.allCases) func aStoreBehindTheGroupsCommitsIsReadFromWhereItStopped(_ backend: StoreBackend) async throws {
        let log = try await LogAhead(backend, in: temporary, configuration: configuration)
        defer { log.fixture.broker.shutdown() }
        let store = log.fixture.store
        try await SagaTracker.prepareStore(store, location: log.fixture.location, broker: log.fixture.broker)
        // What the backup holds: the first event of two topics.
        try await log.append([(topics.requested(.payment), "o-1"), (topics.completed, "o-3")])
        let submitted = [RecordHeader(SagaHeader.createdAt, "900"), RecordHeader(SagaHeader.sourcePosition, "orders/0/1")]
        try log.fixture.tracker.record([
            record(topics.requested(.payment), "o-1", offset: 0, at: 1_000, headers: submitted), record(topics.completed, "o-3", offset: 0, at: 1_000),
        ], consumed: ConsumedOffsets([]))
        // What came after it, and the group's commits past all of it.
        try await log.append([(topics.requested(.payment), "o-2"), (topics.completed, "o-1"), (topics.compensated, "o-4")])
        try await log.runTracker(configuration: configuration) { store in
            try store.order("o-2") != nil && store.order("o-1")?.state == OrderState.completed.rawValue && store.order("o-4") != nil
        }
        #expect(try store.order("o-1")?.state == OrderState.completed.rawValue, "the completion past where the store stopped")
        #expect(try store.order("o-2")?.state == OrderState.payment.rawValue)
        #expect(try store.order("o-4")?.state == OrderState.compensated.rawValue, "a topic the store had not read yet")
        #expect(try store.history("o-1").map(\.event) == ["accepted", "requested", "completed"], "o-1's request recorded once")
    }

    /// A tracker store lost beside an intake that kept its orders (`dispatcher.sqlite`
    /// deleted): the history is filled again from the log's start.
    @Test(arguments: StoreBackend.allCases) func aLostTrackerStoreIsFilledFromTheLogsStart(_ backend: StoreBackend) async throws {
        let log = try await LogAhead(backend, in: temporary, configuration: configuration)
        defer { log.fixture.broker.shutdown() }
        try await log.append([(topics.requested(.payment), "o-1"), (topics.requested(.payment), "o-2"), (topics.completed, "o-1")])
        _ = try log.fixture.store.intake.run("INSERT INTO submitted (order_id, body, created_at) VALUES ('o-1', ?, 900)", [.blob([1])])
        try await log.runTracker(configuration: configuration) { store in
            try store.order("o-2") != nil && store.order("o-1")?.state == OrderState.completed.rawValue
        }
        #expect(try log.fixture.store.order("o-1")?.state == OrderState.completed.rawValue)
        #expect(try log.fixture.store.order("o-2")?.state == OrderState.payment.rawValue)
    }

    /// The watchdog counts what the tracker has left to record from the store's offsets, not
    /// the group's commits: a history being filled again from the log is a backlog, though
    /// the group's commits say there is none.
    @Test(arguments: StoreBackend.allCases) func theWatchdogCountsTheTrackersBacklogFromItsStore(_ backend: StoreBackend) async throws {
        let log = try await LogAhead(backend, in: temporary, configuration: configuration)
        defer { log.fixture.broker.shutdown() }
        let (broker, store) = (log.fixture.broker, log.fixture.store)
        try await log.append([(topics.requested(.payment), "o-1"), (topics.requested(.payment), "o-2"), (topics.completed, "o-1")])
        _ = try store.intake.run("INSERT INTO submitted (order_id, body, created_at) VALUES ('o-1', ?, 900)", [.blob([1])])
        try await SagaTracker.prepareStore(store, location: log.fixture.location, broker: broker)
        let watchdog = log.fixture.watchdog(configuration)
        #expect(try await broker.lag(group: "tracker").reduce(0) { $0 + $1.lag } == 0, "the group's commits are past everything")
        #expect(try await watchdog.trackerBacklog().records == 3)
        try await log.runTracker(configuration: configuration) { store in try store.order("o-1")?.state == OrderState.completed.rawValue && store.order("o-2") != nil }
        #expect(try await watchdog.trackerBacklog().records == 0)
    }

    /// Stores new together on a log an earlier world wrote (a fresh `--store` with an old
    /// `--data-dir`): the tracker starts where its group stands, as the steps' stores do, so
    /// the new stores hold no order from before, even when the dispatcher restarts after its
    /// intake accepted an order and before the tracker recorded anything.
    @Test(arguments: StoreBackend.allCases) func storesNewToAnOldLogStartWhereTheGroupsStand(_ backend: StoreBackend) async throws {
        let log = try await LogAhead(backend, in: temporary, configuration: configuration)
        defer { log.fixture.broker.shutdown() }
        try await log.append([(topics.requested(.payment), "old-1"), (topics.completed, "old-1"), (topics.compensated, "old-2")])
        let store = log.fixture.store
        try await SagaTracker.prepareStore(store, location: log.fixture.location, broker: log.fixture.broker)
        // The intake accepts an order; the dispatcher stops before the tracker records it.
        _ = try store.intake.run("INSERT INTO submitted (order_id, body, created_at) VALUES ('new-1', ?, 900)", [.blob([1])])
        _ = try await log.fixture.broker.produce([log.event(topics.requested(.payment), "new-1")])
        try await log.runTracker(configuration: configuration) { store in try store.order("new-1") != nil }
        #expect(try store.order("new-1")?.state == OrderState.payment.rawValue)
        #expect(try store.order("old-1") == nil && store.order("old-2") == nil, "nothing from before the stores")
    }

    /// The store ahead of the group's commit (a crash between the store's transaction and
    /// the commit), with nothing left to read: the commit moves to where the store stopped,
    /// or the group's lag (which `run --drain` waits on) would never reach zero.
    @Test(arguments: StoreBackend.allCases) func aStoreAheadOfTheGroupsCommitMovesTheCommit(_ backend: StoreBackend) async throws {
        let log = try await LogAhead(backend, in: temporary, configuration: configuration)
        defer { log.fixture.broker.shutdown() }
        let broker = log.fixture.broker
        try await log.append([(topics.completed, "o-1"), (topics.completed, "o-2")])
        try log.fixture.tracker.record([record(topics.completed, "o-1", offset: 0, at: 1_000), record(topics.completed, "o-2", offset: 1, at: 1_000)], consumed: ConsumedOffsets([]))
        try await broker.commitOffsets(group: "tracker", [TopicPartition(topics.completed, 0): 0])
        func lag() async throws -> Int64 { try await broker.lag(group: "tracker").reduce(0) { $0 + $1.lag } }
        #expect(try await lag() == 2)
        try await SagaTracker.prepareStore(log.fixture.store, location: log.fixture.location, broker: broker)
        let tracker = log.fixture.tracker
        let running = Task { try await tracker.run() }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline, try await lag() != 0 { try await Task.sleep(for: .milliseconds(50)) }
        running.cancel()
        try await running.value
        #expect(try await lag() == 0)
    }

    /// A record set aside as poison never reaches `record`; once a commit passes it, the
    /// store's offsets do too, so the tracker does not read it again at its next start.
    @Test(arguments: StoreBackend.allCases) func aCommitPastRecordsSetAsideRaisesTheStoresOffsets(_ backend: StoreBackend) async throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (tracker, store) = (fixture.tracker, fixture.store)
        let consumed = ConsumedOffsets([])
        let dead = TopicPartition(topics.deadLetter(.payment), 0)
        let completed = TopicPartition(topics.completed, 0)
        try tracker.record([record(topics.completed, "o-1", offset: 0, at: 1_000), record(topics.completed, "o-2", offset: 1, at: 1_000)], consumed: consumed)
        // The dead letter at 0 was set aside; the completions were recorded.
        await tracker.noteRecordsSetAside(upTo: [dead: 1, completed: 2], consumed: consumed)
        #expect(await tracker.startOffsets(of: [dead, completed]) == [dead: 1, completed: 2])
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM tracker_offsets") == 2)
        // An older commit changes nothing.
        await tracker.noteRecordsSetAside(upTo: [dead: 0], consumed: ConsumedOffsets([]))
        #expect(await tracker.startOffsets(of: [dead]) == [dead: 1])
    }
}
