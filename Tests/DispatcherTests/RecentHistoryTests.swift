import Broker
import Foundation
import Messaging
import SagaDomain
import StoreDatabase
import TestSupport
import FulfillmentMetrics
import MetricsTestKit
import Testing
@testable import Dispatcher

/// The tracker records history into `history_recent` and moves it into the indexed
/// `history` in sorted chunks (`SagaTracker.RecentHistory`). Readers must not see the move:
/// on real SQLite files, an order's history reads the same before and after it, and a
/// compensation is counted once whichever table holds its first request. On both backends:
/// PostgreSQL keeps the order of insertion by `ctid`, which a move must not disturb.
@Suite struct RecentHistoryTests {
    let temporary = TemporaryDirectory("recent-history")
    let configuration = SagaConfiguration()
    var topics: SagaTopics { configuration.topics }

    func record(_ topic: String, _ orderID: String, offset: Int64, at: Int64) -> ConsumerRecord {
        ConsumerRecord(topic: topic, partition: 0, offset: offset, timestamp: at, key: Array(orderID.utf8),
                       value: DispatcherDecisionTests.orderJSON(orderID), headers: [])
    }

    func events(_ store: DispatcherStore, _ id: String) throws -> [String] {
        try store.history(id).map { "\($0.at) \($0.event) \($0.step ?? "-") \($0.topic)/\($0.offset)" }
    }

    @Test(arguments: StoreBackend.allCases) func anOrdersHistoryReadsTheSameBeforeAndAfterTheMove(_ backend: StoreBackend) throws {
        let location = try backend.freshLocation(directory: temporary.path + "/stores")
        let (broker, logger) = try quietBroker(temporary.path + "/broker", label: "recent-history-test")
        defer { broker.shutdown() }
        let store = try DispatcherStore(location: location)
        let tracker = SagaTracker(broker: broker, store: store, configuration: configuration, logger: logger)
        let consumed = ConsumedOffsets([])
        // Two orders whose events interleave, and two events of o-b at the same millisecond:
        // they must keep the order in which they were recorded.
        let first = [
            record(topics.requested(.payment), "o-b", offset: 0, at: 1_000),
            record(topics.requested(.payment), "o-a", offset: 1, at: 1_001),
            record(topics.requested(.inventory), "o-b", offset: 0, at: 1_005),
            record(topics.retry(.inventory, tier: 1), "o-b", offset: 0, at: 1_005),
        ]
        #expect(try tracker.record(first, consumed: consumed) == 4, "a row per event, all into history_recent")
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM history_recent") == 4)
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM history") == 0)
        let before = try events(store, "o-b")
        #expect(before == [
            "1000 requested payment payment.requested/0", "1005 requested inventory inventory.requested/0",
            "1005 retry_scheduled inventory inventory.requested.retry.1/0",
        ])

        try tracker.moveRecentHistory()
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM history_recent") == 0)
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM history") == 4)
        #expect(try events(store, "o-b") == before, "the move changes no order's history")

        // A later event at the same millisecond as a moved one comes after it.
        let second = [
            record(topics.requested(.inventory), "o-b", offset: 1, at: 1_005),
            record(topics.completed, "o-a", offset: 0, at: 1_009),
        ]
        #expect(try tracker.record(second, consumed: consumed) == 2)
        let mixed = try events(store, "o-b")
        #expect(mixed == before + ["1005 requested inventory inventory.requested/1"])
        try tracker.moveRecentHistory()
        #expect(try events(store, "o-b") == mixed)
        #expect(try events(store, "o-a") == ["1001 requested payment payment.requested/1", "1009 completed - orders.completed/0"])
    }

    @Test(arguments: StoreBackend.allCases) func aCompensationIsCountedOnceWhereverItsFirstRequestWaits(_ backend: StoreBackend) throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (store, tracker, recorded, metrics) = (fixture.store, fixture.tracker, fixture.recorded, fixture.metrics)
        let consumed = ConsumedOffsets([])
        try tracker.record([record(topics.compensation, "o-1", offset: 0, at: 1_000), record(topics.compensation, "o-1", offset: 1, at: 1_001)], consumed: consumed)
        #expect(try recorded.expectCounter(metrics.compensationsStarted).totalValue == 1, "two requests of one order in a batch: one compensation")
        try tracker.record([record(topics.compensation, "o-1", offset: 2, at: 1_002)], consumed: consumed)
        #expect(try recorded.expectCounter(metrics.compensationsStarted).totalValue == 1, "its first request still waits in history_recent")
        try tracker.moveRecentHistory()
        try tracker.record([record(topics.compensation, "o-1", offset: 3, at: 1_003), record(topics.compensation, "o-2", offset: 4, at: 1_004)], consumed: consumed)
        #expect(try recorded.expectCounter(metrics.compensationsStarted).totalValue == 2, "moved or not, o-1 was counted; o-2 is new")
        let stats = try store.connection.scalar("SELECT COUNT(DISTINCT order_id) FROM every_history WHERE event = 'compensation_requested'")
        #expect(stats == 2)
    }

    /// A store an older version made: every history row in `history`, no `history_recent`,
    /// no view, compensations counted by scanning the history.
    @Test(arguments: StoreBackend.allCases) func aStoreFromBeforeTheMoveIsReadAndContinued(_ backend: StoreBackend) throws {
        let location = try backend.freshLocation(directory: temporary.path + "/stores")
        let (broker, logger) = try quietBroker(temporary.path + "/broker", label: "recent-history-test")
        defer { broker.shutdown() }
        do {
            let store = try DispatcherStore(location: location)
            let tracker = SagaTracker(broker: broker, store: store, configuration: configuration, logger: logger)
            try tracker.record([record(topics.requested(.payment), "o-1", offset: 0, at: 1_000), record(topics.compensation, "o-1", offset: 0, at: 1_001)], consumed: ConsumedOffsets([]))
            try tracker.moveRecentHistory()
            try store.connection.execute("""
                DROP VIEW every_history; DROP TABLE history_recent; DROP TABLE compensations_counted;
                DELETE FROM tracker_marks WHERE name = 'compensations_counted';
                """)
        }
        let reader = try DispatcherStore(location: location, readOnly: true)
        #expect(try reader.history("o-1").map(\.event) == ["requested", "compensation_requested"], "read-only: history alone")
        let stats = try reader.connection.scalar("SELECT COUNT(DISTINCT order_id) FROM \(reader.everyHistoryTable) WHERE event = 'compensation_requested'")
        #expect(stats == 1)

        let store = try DispatcherStore(location: location)
        try store.backfillCountedCompensations()
        let recorded = TestMetrics()
        let metrics = SagaMetrics(handles: MetricHandles(factory: recorded), steps: []).orders
        let tracker = SagaTracker(broker: broker, store: store, configuration: configuration, metrics: metrics, logger: logger)
        try tracker.record([record(topics.compensation, "o-1", offset: 1, at: 1_002)], consumed: ConsumedOffsets([]))
        #expect(try recorded.expectCounter(metrics.compensationsStarted).totalValue == 0, "o-1's compensation was counted by the older version")
        #expect(try store.history("o-1").map(\.event) == ["requested", "compensation_requested", "compensation_requested"])
    }

    @Test func theTrackerMovesWhenCaughtUpOrWhenEnoughWaits() {
        let recent = SagaTracker.RecentHistory(rows: 0)
        #expect(!recent.shouldMove(batchWasFull: false), "nothing waits")
        recent.add(10)
        #expect(recent.shouldMove(batchWasFull: false), "caught up: move what waits")
        #expect(!recent.shouldMove(batchWasFull: true), "behind: let rows gather")
        recent.add(SagaTracker.RecentHistory.moveAtRows)
        #expect(recent.shouldMove(batchWasFull: true), "behind, but enough waits")
        recent.moved()
        #expect(!recent.shouldMove(batchWasFull: false))
    }
}
