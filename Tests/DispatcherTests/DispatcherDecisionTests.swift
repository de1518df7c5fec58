import Broker
import Foundation
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import TestSupport
import FulfillmentMetrics
import MetricsTestKit
import Testing
@testable import Dispatcher

/// The dispatcher's decisions, each on real stores (SQLite files) with no consumer running:
/// what the intake does with an order, what the tracker makes of each saga topic, what the
/// compensation driver makes of each dead letter.
@Suite struct DispatcherDecisionTests {
    let temporary = TemporaryDirectory("dispatcher")
    let configuration = SagaConfiguration()
    var topics: SagaTopics { configuration.topics }
    var logger: Logger {
        var logger = Logger(label: "dispatcher-test")
        logger.logLevel = .critical
        return logger
    }

    func store() throws -> DispatcherStore { try DispatcherStore(location: temporary.path) }

    func broker() throws -> EmbeddedBroker { try quietBroker(temporary.path + "/broker", label: "dispatcher-test").0 }

    static func orderJSON(_ id: String, tier: String = "standard", price: Double = 10) -> [UInt8] {
        Array("""
            {"order_id":"\(id)","customer_id":"c-1","customer_tier":"\(tier)","currency":"USD","items":[{"sku":"SKU-1","quantity":1,"unit_price":\(price)}],"payment":{"method":"card","token":"tok_visa"},"shipping_address":{"name":"A","line1":"1 Main St","city":"S","postal_code":"1","country":"US"},"email":"a@example.com"}
            """.utf8)
    }

    static func record(_ topic: String, _ orderID: String, offset: Int64 = 0, headers: [RecordHeader] = [], value: [UInt8]? = nil) -> ConsumerRecord {
        ConsumerRecord(topic: topic, partition: 0, offset: offset, timestamp: 1_700_000_000_000, key: Array(orderID.utf8),
                       value: value ?? orderJSON(orderID), headers: headers)
    }

    func intake(_ store: DispatcherStore) -> OrderIntake {
        OrderIntake(store: store, vipThreshold: configuration.vipAmountThreshold, messages: SagaMessages(topics: topics))
    }

    @Test func intakeRoutesVIPOrdersToThePriorityLaneAndRejectsWithAReason() async throws {
        let store = try store()
        let intake = intake(store)
        let inputs = [
            Self.record(topics.orders, "o-std", offset: 0),
            Self.record(topics.orders, "o-vip", offset: 1, value: Self.orderJSON("o-vip", tier: "vip")),
            Self.record(topics.orders, "o-big", offset: 2, value: Self.orderJSON("o-big", price: configuration.vipAmountThreshold + 1)),
            Self.record(topics.orders, "o-bad", offset: 3, value: Array(#"{"order_id":"o-bad","items":[]}"#.utf8)),
        ]
        var batch: [(message: InboundMessage, work: OrderIntake.Work)] = []
        for record in inputs {
            let message = InboundMessage(record: record)
            batch.append((message, try await intake.perform(message, heartbeat: Heartbeat())))
        }
        let results = try intake.apply(batch)
        func produced(_ i: Int) -> [ProducerRecord] {
            guard case .success(let records) = results[i] else { return [] }
            return records
        }
        #expect(produced(0).map(\.topic) == [topics.requested(.payment)])
        #expect(produced(1).map(\.topic) == [topics.requested(.payment, priority: .vip)])
        #expect(produced(2).map(\.topic) == [topics.requested(.payment, priority: .vip)], "an amount above the threshold rides the priority lane")
        let rejected = try #require(produced(3).first)
        #expect(rejected.topic == topics.rejected)
        #expect(rejected.headers.first { $0.key == SagaHeader.errorClass }?.stringValue == "missing_field")
        #expect(try store.intake.scalar("SELECT COUNT(*) FROM rejections WHERE order_id = 'o-bad'") == 1)

        // The same order again with another body is refused; the same body again is a no-op.
        let changed = InboundMessage(record: Self.record(topics.orders, "o-std", offset: 4, value: Self.orderJSON("o-std", price: 99)))
        let again = InboundMessage(record: Self.record(topics.orders, "o-std", offset: 5))
        let second = try intake.apply([
            (changed, try await intake.perform(changed, heartbeat: Heartbeat())),
            (again, try await intake.perform(again, heartbeat: Heartbeat())),
        ])
        guard case .success(let refused) = second[0], case .success(let repeated) = second[1] else {
            Issue.record("\(second)")
            return
        }
        #expect(refused.map(\.topic) == [topics.rejected])
        #expect(refused.first?.headers.first { $0.key == SagaHeader.errorClass }?.stringValue == "duplicate_order_id")
        #expect(repeated.map(\.topic) == [topics.requested(.payment)], "not yet tracked: its request is published again")
    }

    @Test func theTrackerNamesEachSagaTopicsEvent() throws {
        let broker = try broker()
        defer { broker.shutdown() }
        let tracker = SagaTracker(broker: broker, store: try store(), configuration: configuration, logger: logger)
        func event(_ topic: String, _ headers: [RecordHeader] = []) -> (String, OrderState?, SagaStep?)? {
            tracker.classify(Self.record(topic, "o-1", headers: headers)).map { ($0.name, $0.state, $0.failedStep) }
        }
        #expect(event(topics.requested(.inventory))?.0 == "requested")
        #expect(event(topics.requested(.inventory))?.1 == .inventory)
        #expect(event(topics.requested(.shipping), [RecordHeader(SagaHeader.recoveredBy, "watchdog")])?.0 == "recovered")
        #expect(event(topics.requested(.shipping), [RecordHeader(SagaHeader.redriven, "x/0/1")])?.0 == "redriven")
        #expect(event(topics.retry(.payment, tier: 2))?.0 == "retry_scheduled")
        let failed = try #require(event(topics.deadLetter(.inventory), [RecordHeader(SagaHeader.errorClass, "OutOfStock")]))
        #expect(failed.0 == "dead_lettered" && failed.1 == .compensating && failed.2 == .inventory)
        // A late duplicate of a compensated order is history only: it must not reopen the order.
        let late = try #require(event(topics.deadLetter(.payment), [RecordHeader(SagaHeader.errorClass, "OrderCompensated")]))
        #expect(late.1 == nil && late.2 == nil)
        #expect(event(topics.completed)?.1 == .completed)
        #expect(event(topics.compensated)?.1 == .compensated)
        #expect(event(topics.manualReview)?.1 == .manualReview)
        #expect(event(topics.deadLetter(nil))?.1 == nil, "the driver parks it next; the dead letter alone sets no state")
        #expect(tracker.classify(ConsumerRecord(topic: topics.completed, partition: 0, offset: 0, timestamp: 0, key: nil, value: [], headers: [])) == nil,
                "a record naming no order is not an event")
        // Every topic it reads has a role, the one its name gives; a topic it does not read has none.
        for topic in SagaTracker.topics(configuration) {
            #expect(tracker.roles[topic] != nil && tracker.roles[topic] == SagaTracker.role(ofTopic: topic, topics), "\(topic)")
        }
        #expect(event(topics.retry(.inventory, tier: 9))?.0 == "retry_scheduled", "a tier beyond the configured ones is still a retry")
        #expect(event("unrelated.topic") == nil)
    }

    @Test func theDriverCompensatesStepFailuresAndParksWhatItCannotUndo() throws {
        let broker = try broker()
        defer { broker.shutdown() }
        let store = try store()
        let recorded = TestMetrics()
        let alerts = MetricHandles(factory: recorded).counter(MetricCatalogue.manualReviewAlerts)
        let driver = CompensationDriver(broker: broker, store: store, configuration: configuration, alerts: alerts, logger: logger)
        let failure = [RecordHeader(SagaHeader.errorClass, "CardDeclined"), RecordHeader(SagaHeader.errorMessage, "declined")]
        let out = try [
            Self.record(topics.deadLetter(.payment), "o-1", headers: failure),
            Self.record(topics.deadLetter(.shipping), "o-2", headers: failure + [RecordHeader("on-exhausted", "park")]),
            Self.record(topics.deadLetter(nil), "o-3", headers: failure),
            Self.record(topics.deadLetter(.inventory), "o-4", headers: [RecordHeader(SagaHeader.errorClass, "OrderCompensated")]),
        ].compactMap(driver.decide)
        #expect(out.map(\.topic) == [topics.compensation, topics.manualReview, topics.manualReview], "o-4 is a late duplicate: ignored")
        #expect(out[0].headers.first { $0.key == SagaHeader.reason }?.stringValue.contains("payment failed: CardDeclined") == true)
        #expect(out[1].headers.first { $0.key == SagaHeader.reason }?.stringValue.contains("policy parks") == true)
        #expect(out[2].headers.first { $0.key == SagaHeader.reason }?.stringValue.contains("compensation failed past its retry cap") == true)
        #expect(try store.connection.scalar("SELECT COUNT(*) FROM alerts WHERE kind = 'manual_review'") == 2, "every parked order raises an alert")
        #expect(try recorded.expectCounter(alerts).totalValue == 2)
    }
}
