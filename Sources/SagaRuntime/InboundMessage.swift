import Foundation
import Messaging
import SagaDomain
import Synchronization

/// A consumed saga message, its headers read in one pass. A reference, so the runtime's
/// pipeline (waiting, running, finished, flushed) passes one pointer along instead of
/// copying the record's buffers.
public final class InboundMessage: Sendable {
    public let record: ConsumerRecord
    public let orderID: String
    public let step: SagaStep?
    public let attempt: Int
    public let priority: Priority
    /// The lane the runtime took it from: `.vip` when it came from a `.priority` topic's
    /// consumer. The pipeline budgets, orders and flushes by the lane, not by the header, so a
    /// record without a `priority` header on a priority topic (an order `produce` put on
    /// `orders.priority` has none) still counts against the VIP lane's budget.
    public let lane: Priority
    public let idempotencyKey: String

    /// `lane` nil: the one its `priority` header says.
    public init(record: ConsumerRecord, lane: Priority? = nil) {
        self.record = record
        var step: SagaStep?
        var attempt = 1
        var priority = Priority.standard
        var idempotencyKey = ""
        var sagaID: String?
        for header in record.headers {
            switch header.key {
            case SagaHeader.step: step = SagaStep(rawValue: header.stringValue)
            case SagaHeader.attempt: attempt = Int(header.stringValue) ?? 1
            case SagaHeader.priority: priority = Priority(rawValue: header.stringValue) ?? .standard
            case SagaHeader.idempotencyKey: idempotencyKey = header.stringValue
            case SagaHeader.sagaID: sagaID = header.stringValue
            default: continue
            }
        }
        self.step = step
        self.attempt = attempt
        self.priority = priority
        self.lane = lane ?? priority
        self.idempotencyKey = idempotencyKey
        orderID = record.keyString ?? sagaID.map { $0.hasPrefix("saga-") ? String($0.dropFirst(5)) : $0 } ?? ""
    }

    public var topicPartition: TopicPartition { record.topicPartition }

    /// The order a saga record is about: its key, else its `saga-id` header, else "".
    public static func orderID(of record: ConsumerRecord) -> String {
        record.keyString ?? record.header(SagaHeader.sagaID).map { $0.hasPrefix("saga-") ? String($0.dropFirst(5)) : $0 } ?? ""
    }

    /// The order carried as the value (every step request carries the whole order).
    public func decodeOrder() throws -> Order {
        if let cached = ParsedOrders.shared.order(orderID, bytes: record.value) { return cached }
        let order = try Order.decode(record.value)
        ParsedOrders.shared.remember(order, bytes: record.value)
        return order
    }

    /// The order, or a non-retryable `MalformedMessage` failure naming what `what` expected.
    public func requireOrder(_ what: String) throws -> Order {
        do { return try decodeOrder() } catch {
            throw StepFailure(StepFailure.malformedClass, "\(what) request is not an order: \(error)")
        }
    }
}

extension InboundMessage {
    /// The message's idempotency key, defaulting to `<order>:<step>`.
    package func key(for step: SagaStep) -> String {
        idempotencyKey.isEmpty ? IdempotencyKey.step(orderID, step) : idempotencyKey
    }
}
