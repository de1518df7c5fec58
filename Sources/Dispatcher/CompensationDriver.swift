import IOThreads
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import ServiceLifecycle
import StoreDatabase

/// Reads every step's dead-letter topic and turns each dead letter into a compensation
/// request that undoes what the order holds, newest first. A step whose policy says
/// `on_exhausted: park`, and a compensation that itself ran out of retries, go to
/// `orders.manual-review` with an alert instead: compensation never gives up silently.
public struct CompensationDriver: Service {
    let broker: any MessageBroker
    let store: DispatcherStore
    let configuration: SagaConfiguration
    let logger: Logger
    let alerts: WorkerMetrics
    let journal: PoisonJournal?

    public init(broker: any MessageBroker, store: DispatcherStore, configuration: SagaConfiguration, alerts: WorkerMetrics, journal: PoisonJournal? = nil, logger: Logger) {
        self.journal = journal
        self.broker = broker
        self.store = store
        self.configuration = configuration
        self.alerts = alerts
        self.logger = logger
    }

    public func run() async throws {
        let t = configuration.topics
        let loop = ConsumerLoop(broker: broker, group: "compensation-driver", topics: t.stepDeadLetters + [t.deadLetter(nil)], batchSize: 500, logger: logger, journal: journal,
            poisonOutcome: { record, reason in [manualReview(record, reason: "a dead letter the compensation driver cannot handle: \(reason)")] }) { records in
            let outgoing = try await BlockingIO.run { try decide(records) }
            if !outgoing.isEmpty { _ = try await broker.produce(outgoing) }
        }
        try await loop.run()
    }

    func decide(_ records: [ConsumerRecord]) throws -> [ProducerRecord] {
        let t = configuration.topics
        let messages = SagaMessages(topics: t)
        var outgoing: [ProducerRecord] = []
        for record in records {
            let message = InboundMessage(record: record)
            let errorClass = record.header(SagaHeader.errorClass) ?? "unknown"
            let errorMessage = record.header(SagaHeader.errorMessage) ?? ""
            if errorClass == "OrderCompensated" { continue }  // a late duplicate of an order already undone
            let step = t.step(ofTopic: record.topic)
            let park = record.header("on-exhausted") == ExhaustedAction.park.rawValue
            if step == nil || park || message.orderID.isEmpty || errorClass == StepFailure.malformedClass {
                let why = step == nil
                    ? "compensation failed past its retry cap (\(errorClass): \(errorMessage))"
                    : park ? "\(step!.rawValue) exhausted its retries and its policy parks orders (\(errorClass): \(errorMessage))"
                    : "unreadable dead letter on \(record.topic) (\(errorClass): \(errorMessage))"
                outgoing.append(manualReview(record, reason: why))
                try raiseAlert(orderID: message.orderID, why)
                continue
            }
            outgoing.append(messages.compensation(
                orderID: message.orderID, orderJSON: record.value, priority: message.priority,
                reason: "\(step!.rawValue) failed: \(errorClass): \(errorMessage)"))
        }
        return outgoing
    }

    func manualReview(_ record: ConsumerRecord, reason: String) -> ProducerRecord {
        var headers = record.headers.filter { $0.key != SagaHeader.reason }
        headers.append(RecordHeader(SagaHeader.reason, reason))
        return ProducerRecord(topic: configuration.topics.manualReview, key: record.key, value: record.value, headers: headers)
    }

    func raiseAlert(orderID: String, _ message: String) throws {
        alerts.add("manual_review_alerts")
        logger.error("order parked for manual review", metadata: ["order.id": "\(orderID)", "error.message": "\(message)"])
        try store.connection.run("INSERT INTO alerts VALUES (?, ?, 'manual_review', ?)", [.integer(UnixClock.nowMillis()), .text(orderID), .text(message)])
    }
}
