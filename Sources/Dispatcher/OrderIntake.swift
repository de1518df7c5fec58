import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// Order intake: validates each record of `orders`, publishes a machine-readable rejection to
/// `orders.rejected` for anything invalid, and routes accepted orders to
/// `payment.requested`, or `payment.requested.priority` for VIP orders (tier `vip` or amount
/// above the threshold). Resubmitting an order (same id, same body) is a no-op; the same id
/// with a different body is rejected as `duplicate_order_id`.
public struct OrderIntake: StepHandler {
    public enum Work: Sendable {
        case valid(Order, canonical: [UInt8])
        case invalid(OrderRejection)
    }

    public let name = SagaGroups.intake
    let store: DispatcherStore
    let validator: OrderValidator
    let vipThreshold: Double
    let messages: SagaMessages

    public init(store: DispatcherStore, validator: OrderValidator = OrderValidator(), vipThreshold: Double, messages: SagaMessages) {
        self.store = store
        self.validator = validator
        self.vipThreshold = vipThreshold
        self.messages = messages
    }

    public static func priority(of order: Order, threshold: Double) -> Priority {
        order.lane(vipAbove: threshold)
    }

    /// An accepted order's first request: `payment.requested`, or its priority topic for a VIP
    /// order, keyed as every later redelivery or recovery of it is.
    static func paymentRequest(
        _ order: Order, canonical: [UInt8], vipThreshold: Double, createdAt: Int64, messages: SagaMessages, extra: [RecordHeader]
    ) -> ProducerRecord {
        var request = messages.request(.payment, orderID: order.orderID, orderJSON: canonical, priority: priority(of: order, threshold: vipThreshold))
        request.headers += [RecordHeader(SagaHeader.createdAt, String(createdAt))] + extra
        return request
    }

    public func recordedOutcomes(for messages: [InboundMessage]) throws -> [Int: HandlerResult] { [:] }

    public func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Work {
        switch validator.validate(message.record.value) {
        case .success(let order):
            var normalized = order
            normalized.amount = Double(order.amountCents) / 100
            let canonical = normalized.canonicalJSON()
            ParsedOrders.shared.remember(normalized, bytes: canonical)
            return .valid(normalized, canonical: canonical)
        case .failure(let rejection):
            var rejection = rejection
            if rejection.orderID == nil, let key = message.record.keyString { rejection.orderID = key }
            return .invalid(rejection)
        }
    }

    public func apply(_ batch: [(message: InboundMessage, work: Work)]) throws -> [HandlerResult] {
        try store.intake.transaction { db in
            // Stamped once the transaction holds the store, so acceptances commit about in
            // the order of their times (the watchdog walks them by time).
            let acceptedAt = UnixClock.nowMillis()
            // The bodies already submitted under the batch's order ids, in one statement;
            // kept current as the batch submits (one id twice in a batch is a duplicate).
            var submitted = Dictionary(try db.query("SELECT order_id, body FROM submitted WHERE order_id = ANY(?)", anyOf: batch.compactMap { _, work in
                if case .valid(let order, _) = work { order.orderID } else { nil }
            }) { ($0.text(0), $0.blob(1)) }, uniquingKeysWith: { first, _ in first })
            return try batch.map { message, work in
                let record = message.record
                switch work {
                case .invalid(let rejection):
                    return .success([try reject(rejection, record, db)])
                case .valid(let order, let canonical):
                    let source = RecordCoordinates(record.topicPartition, record.offset).description
                    let request = Self.paymentRequest(
                        order, canonical: canonical, vipThreshold: vipThreshold, createdAt: record.timestamp, messages: messages,
                        extra: [RecordHeader(SagaHeader.sourcePosition, source)])
                    if let body = submitted[order.orderID] {
                        guard body == canonical else {
                            let rejection = OrderRejection(
                                orderID: order.orderID, reason: .duplicateOrderID, field: "order_id",
                                message: "order \(order.orderID) was already submitted with a different body; use a new order_id")
                            return .success([try reject(rejection, record, db)])
                        }
                        // Same order again. If the tracker never saw it start (we crashed between
                        // storing and publishing), publish its request again; otherwise a no-op.
                        let started = try store.stateReader.scalar("SELECT 1 FROM orders WHERE order_id = ?", [.text(order.orderID)]) != nil
                        return .success(started ? [] : [request])
                    }
                    try db.run(
                        "INSERT INTO submitted (order_id, body, created_at, accepted_at, source) VALUES (?, ?, ?, ?, ?)",
                        [.text(order.orderID), .blob(canonical), .integer(record.timestamp), .integer(acceptedAt), .text(source)])
                    submitted[order.orderID] = canonical
                    return .success([request])
                }
            }
        }
    }

    /// The rejection of an order record that crashed the process twice (quarantined).
    public func poisonRejection(_ message: InboundMessage, reason: String) -> ProducerRecord {
        let orderID = message.orderID.isEmpty ? message.record.keyString : message.orderID
        let rejection = OrderRejection(orderID: orderID, reason: .poison, message: "the order \(reason); it is on \(PoisonRecord.topic(for: message.record.topic))")
        // Counted with the other rejections (stats, `run --drain`); rare, so a blocking write
        // here is no cost. If the store refuses it, the record on orders.rejected still tells.
        return (try? store.intake.transaction { db in try reject(rejection, message.record, db) }) ?? rejectionRecord(rejection, message.record)
    }

    private func reject(_ rejection: OrderRejection, _ record: ConsumerRecord, _ db: StoreConnection.Transaction) throws -> ProducerRecord {
        try db.run(
            "INSERT OR IGNORE INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [.text(record.topic), .integer(Int64(record.partition)), .integer(record.offset), rejection.orderID.map { .text($0) } ?? .null,
             .text(rejection.reason.rawValue), rejection.field.map { .text($0) } ?? .null, .text(rejection.message), .integer(record.timestamp)])
        return rejectionRecord(rejection, record)
    }

    private func rejectionRecord(_ rejection: OrderRejection, _ record: ConsumerRecord) -> ProducerRecord {
        var headers = [
            RecordHeader(SagaHeader.step, "intake"),
            RecordHeader(SagaHeader.originalTopic, record.topic),
            RecordHeader(SagaHeader.originalPartition, String(record.partition)),
            RecordHeader(SagaHeader.originalOffset, String(record.offset)),
            RecordHeader(SagaHeader.errorClass, rejection.reason.rawValue),
            RecordHeader(SagaHeader.errorMessage, rejection.message),
        ]
        if let id = rejection.orderID { headers.insert(RecordHeader(SagaHeader.sagaID, "saga-\(id)"), at: 0) }
        return ProducerRecord(
            topic: messages.topics.rejected, key: rejection.orderID.map { Array($0.utf8) } ?? record.key,
            value: SagaCoding.encode(rejection), headers: headers)
    }
}
