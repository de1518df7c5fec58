import CoreMetrics
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
    /// Counts every order parked with an alert.
    let alerts: Counter
    let journal: PoisonJournal?
    let metrics: RuntimeMetrics
    /// Called once its consumer has joined (for `/readyz`).
    public var onReady: (@Sendable () -> Void)?

    public init(
        broker: any MessageBroker, store: DispatcherStore, configuration: SagaConfiguration, alerts: Counter, journal: PoisonJournal? = nil,
        metrics: RuntimeMetrics = .disabled, logger: Logger
    ) {
        self.metrics = metrics
        self.journal = journal
        self.broker = broker
        self.store = store
        self.configuration = configuration
        self.alerts = alerts
        self.logger = logger
    }

    public func run() async throws {
        var runtime = WorkerRuntimeConfiguration(
            group: SagaGroups.compensationDriver, standardTopics: SagaGroups.compensationDriverTopics(configuration), priorityTopics: [], policy: StepPolicy(), router: nil)
        runtime.batchSize = 500
        runtime.journal = journal
        runtime.metrics = metrics
        runtime.onReady = onReady
        runtime.poisonOutcome = { message, reason in [manualReview(message.record, reason: "a dead letter the compensation driver cannot handle: \(reason)")] }
        try await WorkerRuntime(broker: broker, handler: Decisions(driver: self), configuration: runtime, logger: logger).run()
    }

    /// The driver's part in the worker runtime: each dead letter decided in line, the batch's
    /// alerts written as it is applied.
    struct Decisions: StepHandler {
        let driver: CompensationDriver
        var name: String { SagaGroups.compensationDriver }
        var performsInline: Bool { true }

        func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws {}

        func apply(_ batch: [(message: InboundMessage, work: Void)]) throws -> [HandlerResult] {
            try batch.map { .success(try driver.decide($0.message.record).map { [$0] } ?? []) }
        }
    }

    /// What one dead letter becomes: a compensation request, a manual-review record (with an
    /// alert), or nothing for a late duplicate of an order already undone.
    func decide(_ record: ConsumerRecord) throws -> ProducerRecord? {
        let t = configuration.topics
        let message = InboundMessage(record: record)
        let errorClass = record.header(SagaHeader.errorClass) ?? "unknown"
        let errorMessage = record.header(SagaHeader.errorMessage) ?? ""
        if errorClass == "OrderCompensated" { return nil }
        let step = t.step(ofTopic: record.topic)
        let parkedByWorker = record.header("on-exhausted") == ExhaustedAction.park.rawValue
        guard let step, !message.orderID.isEmpty, errorClass != StepFailure.malformedClass else {
            let why = step == nil
                ? "compensation failed past its retry cap (\(errorClass): \(errorMessage))"
                : "unreadable dead letter on \(record.topic) (\(errorClass): \(errorMessage))"
            try raiseAlert(orderID: message.orderID, why)
            return manualReview(record, reason: why)
        }
        let outcome = parkedByWorker
            ? .park(reason: "\(step.rawValue) exhausted its retries and its policy parks orders")
            : configuration.outcome(ofFailureAt: step, errorClass: errorClass)
        switch outcome {
        case .park(let reason):
            let why = "\(reason) (\(errorClass): \(errorMessage))"
            try raiseAlert(orderID: message.orderID, why)
            return manualReview(record, reason: why)
        case .compensate(let undo):
            return SagaMessages(topics: t).compensation(
                orderID: message.orderID, orderJSON: record.value, priority: message.priority,
                reason: "\(step.rawValue) failed: \(errorClass): \(errorMessage)", extra: Self.undoHeader(undo, configured: configuration[step].undo != nil))
        }
    }

    /// The undo list travels only when the configuration names one; without it the
    /// compensation undoes every effect the order may hold, newest first (an order can be
    /// further along than the failure the driver saw).
    static func undoHeader(_ undo: [SagaStep], configured: Bool) -> [RecordHeader] {
        configured ? [RecordHeader(SagaHeader.undo, undo.map(\.rawValue).joined(separator: ","))] : []
    }

    func manualReview(_ record: ConsumerRecord, reason: String) -> ProducerRecord {
        var headers = record.headers.filter { $0.key != SagaHeader.reason }
        headers.append(RecordHeader(SagaHeader.reason, reason))
        return ProducerRecord(topic: configuration.topics.manualReview, key: record.key, value: record.value, headers: headers)
    }

    func raiseAlert(orderID: String, _ message: String) throws {
        alerts.increment()
        logger.error("order parked for manual review", metadata: ["order.id": "\(orderID)", "error.message": "\(message)"])
        try store.connection.run("INSERT INTO alerts VALUES (?, ?, 'manual_review', ?)", [.integer(UnixClock.nowMillis()), .text(orderID), .text(message)])
    }
}
