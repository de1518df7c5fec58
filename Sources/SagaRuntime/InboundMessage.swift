import Foundation
import Messaging
import SagaDomain
import Synchronization

/// A consumed saga message with its headers read once.
public struct InboundMessage: Sendable {
    public var record: ConsumerRecord
    public var orderID: String
    public var step: SagaStep?
    public var attempt: Int
    public var priority: Priority
    public var idempotencyKey: String

    public init(record: ConsumerRecord) {
        self.record = record
        orderID = Self.orderID(of: record)
        step = record.header(SagaHeader.step).flatMap(SagaStep.init(rawValue:))
        attempt = record.header(SagaHeader.attempt).flatMap(Int.init) ?? 1
        priority = record.header(SagaHeader.priority).flatMap(Priority.init(rawValue:)) ?? .standard
        idempotencyKey = record.header(SagaHeader.idempotencyKey) ?? ""
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
