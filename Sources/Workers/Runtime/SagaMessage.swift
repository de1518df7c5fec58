import Broker
import Foundation
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

/// Copies the failure headers of DESIGN.md onto a record sent to a retry tier or a DLT.
public enum FailureHeaders {
    public static func make(from message: InboundMessage, errorClass: String, errorMessage: String, failedAt: Int64, attempt: Int) -> [RecordHeader] {
        // Replace the attempt and error headers; keep the original position of the first failure.
        var headers = message.record.headers.filter { header in
            ![SagaHeader.attempt, SagaHeader.errorClass, SagaHeader.errorMessage, SagaHeader.failedAt].contains(header.key)
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

/// Orders already parsed in this process, by id and exact bytes: in the all-in-one process
/// the same order body passes intake and four steps, and parsing it once instead of five
/// times is a measurable share of the CPU. A hit needs byte-identical JSON, so a changed
/// body (a redrive, a user's own message) is always parsed afresh. Bounded; lock-striped.
public final class ParsedOrders: Sendable {
    public static let shared = ParsedOrders()

    private static let stripes = 16
    private static let perStripe = 4096
    private final class Stripe: Sendable {
        let table = Mutex<[String: (bytes: [UInt8], order: Order)]>([:])
    }

    private let stripes: [Stripe] = (0..<ParsedOrders.stripes).map { _ in Stripe() }

    private func stripe(_ id: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in id.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(Self.stripes))
    }

    public func order(_ id: String, bytes: [UInt8]) -> Order? {
        stripes[stripe(id)].table.withLock { table in
            guard let entry = table[id], entry.bytes == bytes else { return nil }
            return entry.order
        }
    }

    public func remember(_ order: Order, bytes: [UInt8]) {
        stripes[stripe(order.orderID)].table.withLock { table in
            if table.count >= Self.perStripe { table.removeAll(keepingCapacity: true) }
            table[order.orderID] = (bytes, order)
        }
    }
}
