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
}
