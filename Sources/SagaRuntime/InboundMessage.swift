import Foundation
import Messaging
import SagaDomain
import Synchronization

/// A consumed saga message. A reference, so the runtime's pipeline (waiting, running,
/// finished, flushed) passes one pointer along instead of copying the record's buffers; the
/// order id is read once, the other headers when asked for.
public final class InboundMessage: Sendable {
    public let record: ConsumerRecord
    public let orderID: String

    public init(record: ConsumerRecord) {
        self.record = record
        orderID = Self.orderID(of: record)
    }

    public var step: SagaStep? { record.header(SagaHeader.step).flatMap(SagaStep.init(rawValue:)) }
    public var attempt: Int { record.header(SagaHeader.attempt).flatMap(Int.init) ?? 1 }
    public var priority: Priority { record.header(SagaHeader.priority).flatMap(Priority.init(rawValue:)) ?? .standard }
    public var idempotencyKey: String { record.header(SagaHeader.idempotencyKey) ?? "" }

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
        let key = idempotencyKey
        return key.isEmpty ? IdempotencyKey.step(orderID, step) : key
    }
}
