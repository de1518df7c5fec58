import Foundation
import Messaging
import SagaDomain
import Synchronization

/// Builds the records the saga publishes, with the headers of ../shared/DESIGN.md.
public struct SagaMessages: Sendable {
    public let topics: SagaTopics

    public init(topics: SagaTopics) { self.topics = topics }

    public static func headers(orderID: String, key: String, step: String, attempt: Int, priority: Priority) -> [RecordHeader] {
        [
            RecordHeader(SagaHeader.sagaID, "saga-\(orderID)"),
            RecordHeader(SagaHeader.idempotencyKey, key),
            RecordHeader(SagaHeader.step, step),
            RecordHeader(SagaHeader.attempt, String(attempt)),
            RecordHeader(SagaHeader.priority, priority.rawValue),
        ]
    }

    /// The request for `step` of an order, attempt 1, in the order's lane.
    public func request(_ step: SagaStep, orderID: String, orderJSON: [UInt8], priority: Priority) -> ProducerRecord {
        ProducerRecord(
            topic: topics.requested(step, priority: priority), key: Array(orderID.utf8), value: orderJSON,
            headers: Self.headers(orderID: orderID, key: IdempotencyKey.step(orderID, step), step: step.rawValue, attempt: 1, priority: priority))
    }

    /// The event after `step` succeeded: the next step's request, or `orders.completed`.
    public func next(after step: SagaStep, orderID: String, orderJSON: [UInt8], priority: Priority) -> ProducerRecord {
        if let next = step.next { return request(next, orderID: orderID, orderJSON: orderJSON, priority: priority) }
        return ProducerRecord(
            topic: topics.completed, key: Array(orderID.utf8), value: orderJSON,
            headers: Self.headers(orderID: orderID, key: "\(orderID):completed", step: "completed", attempt: 1, priority: priority))
    }

    /// A compensation request: the compensation worker undoes every effect the order may
    /// hold, newest first (see `CompensationHandler`).
    public func compensation(orderID: String, orderJSON: [UInt8], priority: Priority, reason: String, extra: [RecordHeader] = []) -> ProducerRecord {
        var headers = Self.headers(orderID: orderID, key: IdempotencyKey.compensation(orderID), step: "compensation", attempt: 1, priority: priority)
        headers.append(RecordHeader(SagaHeader.reason, reason))
        return ProducerRecord(topic: topics.compensation, key: Array(orderID.utf8), value: orderJSON, headers: headers + extra)
    }

    public func compensated(orderID: String, orderJSON: [UInt8], priority: Priority, reason: String) -> ProducerRecord {
        var headers = Self.headers(orderID: orderID, key: "\(orderID):compensated", step: "compensated", attempt: 1, priority: priority)
        headers.append(RecordHeader(SagaHeader.reason, reason))
        return ProducerRecord(topic: topics.compensated, key: Array(orderID.utf8), value: orderJSON, headers: headers)
    }
}
