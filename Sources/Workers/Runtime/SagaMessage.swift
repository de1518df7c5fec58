import Broker
import Foundation
import SagaDomain

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
        let headerOrder = record.header(SagaHeader.sagaID).map { $0.hasPrefix("saga-") ? String($0.dropFirst(5)) : $0 }
        orderID = record.keyString ?? headerOrder ?? ""
        step = record.header(SagaHeader.step).flatMap(SagaStep.init(rawValue:))
        attempt = record.header(SagaHeader.attempt).flatMap(Int.init) ?? 1
        priority = record.header(SagaHeader.priority).flatMap(Priority.init(rawValue:)) ?? .standard
        idempotencyKey = record.header(SagaHeader.idempotencyKey) ?? ""
    }

    public var topicPartition: TopicPartition { record.topicPartition }

    /// The order carried as the value (every step request carries the whole order).
    public func decodeOrder() throws -> Order {
        try Order.decode(record.value)
    }
}

/// JSON for the saga's own small documents (rejections, reports); orders use `canonicalJSON()`.
public enum SagaCoding {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }
}

/// Builds the records the saga publishes, with the headers of DESIGN.md.
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

    /// A compensation request undoing `undo` (newest effect first).
    public func compensation(orderID: String, orderJSON: [UInt8], priority: Priority, undo: [SagaStep], reason: String, extra: [RecordHeader] = []) -> ProducerRecord {
        var headers = Self.headers(orderID: orderID, key: IdempotencyKey.compensation(orderID), step: "compensation", attempt: 1, priority: priority)
        headers.append(RecordHeader(SagaHeader.undo, undo.map(\.rawValue).joined(separator: ",")))
        headers.append(RecordHeader(SagaHeader.reason, reason))
        return ProducerRecord(topic: topics.compensation, key: Array(orderID.utf8), value: orderJSON, headers: headers + extra)
    }

    public func compensated(orderID: String, orderJSON: [UInt8], priority: Priority, reason: String) -> ProducerRecord {
        var headers = Self.headers(orderID: orderID, key: "\(orderID):compensated", step: "compensated", attempt: 1, priority: priority)
        headers.append(RecordHeader(SagaHeader.reason, reason))
        return ProducerRecord(topic: topics.compensated, key: Array(orderID.utf8), value: orderJSON, headers: headers)
    }

    /// Undo list for an order that failed at `step` (see `SagaStep.undoOrderOnFailure`).
    public static func undoList(failedAt step: SagaStep) -> [SagaStep] { step.undoOrderOnFailure }
}

/// Copies the failure headers of DESIGN.md onto a record sent to a retry tier or a DLT.
public enum FailureHeaders {
    public static func make(from message: InboundMessage, errorClass: String, errorMessage: String, failedAt: Int64, attempt: Int) -> [RecordHeader] {
        var headers = message.record.headers.filter { header in
            ![SagaHeader.attempt, SagaHeader.errorClass, SagaHeader.errorMessage, SagaHeader.failedAt].contains(header.key)
                && !(header.key.hasPrefix("original-") && message.record.header(SagaHeader.originalTopic) == nil)
        }
        if message.record.header(SagaHeader.originalTopic) == nil {
            headers.append(RecordHeader(SagaHeader.originalTopic, message.record.topic))
            headers.append(RecordHeader(SagaHeader.originalPartition, String(message.record.partition)))
            headers.append(RecordHeader(SagaHeader.originalOffset, String(message.record.offset)))
        }
        headers.append(RecordHeader(SagaHeader.attempt, String(attempt)))
        headers.append(RecordHeader(SagaHeader.errorClass, errorClass))
        headers.append(RecordHeader(SagaHeader.errorMessage, String(errorMessage.prefix(500))))
        headers.append(RecordHeader(SagaHeader.failedAt, String(failedAt)))
        if message.record.header(SagaHeader.sagaID) == nil, !message.orderID.isEmpty {
            headers.append(RecordHeader(SagaHeader.sagaID, "saga-\(message.orderID)"))
        }
        return headers
    }
}
