import Foundation
import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// Inspecting and redriving dead letters: every step DLT, the compensation DLT and
/// `orders.manual-review`.
public struct DeadLetters: Sendable {
    public struct TopicSummary: Codable, Sendable {
        public var topic: String
        public var depth: Int
        public var pending: Int
        public var errorClasses: [String: Int]

        enum CodingKeys: String, CodingKey {
            case topic, depth, pending, errorClasses = "error_classes"
        }
    }

    public struct Letter: Codable, Sendable {
        public var topic: String
        public var partition: Int
        public var offset: Int64
        public var orderID: String
        public var timestamp: Int64
        public var headers: [String: String]
        public var value: String
        public var redriven: Bool

        enum CodingKeys: String, CodingKey {
            case topic, partition, offset, orderID = "order_id", timestamp, headers, value, redriven
        }
    }

    public struct RedriveResult: Codable, Sendable {
        public var redriven: [Letter]
        public var skipped: [String]
        public var dryRun: Bool

        enum CodingKeys: String, CodingKey {
            case redriven, skipped, dryRun = "dry_run"
        }
    }

    let broker: any MessageBroker
    let store: DispatcherStore
    let topics: SagaTopics

    public init(broker: any MessageBroker, store: DispatcherStore, topics: SagaTopics) {
        self.broker = broker
        self.store = store
        self.topics = topics
    }

    /// Every step DLT, the compensation DLT, `orders.manual-review`, and the `<topic>.poison`
    /// topics that exist (made when a consumer first quarantines a record).
    public func deadLetterTopics() async throws -> [String] {
        let fixed = topics.stepDeadLetters + [topics.deadLetter(nil), topics.manualReview]
        let poison = try await broker.listTopics().map(\.name).filter { $0.hasSuffix(PoisonRecord.suffix) }.sorted()
        return fixed + poison
    }

    /// What a redrive takes when no topic is named: every dead-letter topic but the
    /// `.poison` ones (a poison record goes back only when asked for by name, once what
    /// crashed on it is fixed).
    public func defaultRedriveTopics() async throws -> [String] {
        try await deadLetterTopics().filter { !$0.hasSuffix(PoisonRecord.suffix) }
    }

    public func letters(topic: String, orderID: String? = nil, limit: Int = .max) async throws -> [Letter] {
        let known = try await deadLetterTopics()
        guard known.contains(topic) || topic.hasSuffix(PoisonRecord.suffix) else {
            throw StepFailure("UnknownTopic", "\(topic) is not a dead-letter topic; choose one of: \(known.joined(separator: ", "))")
        }
        let description = try await broker.describeTopic(topic)
        let redriven = Set(try store.connection.query("SELECT partition, offset FROM redriven WHERE topic = ?", [.text(topic)]) { "\($0.int(0))/\($0.int(1))" })
        var result: [Letter] = []
        for partition in description.partitions {
            var offset = partition.beginOffset
            while offset < partition.endOffset {
                let records = try await broker.read(topic: topic, partition: partition.partition, from: offset, maxRecords: 5000)
                guard let last = records.last else { break }
                for record in records {
                    let message = InboundMessage(record: record)
                    if let orderID, message.orderID != orderID { continue }
                    var headers: [String: String] = [:]
                    for header in record.headers { headers[header.key] = header.stringValue }
                    result.append(Letter(
                        topic: topic, partition: record.partition, offset: record.offset, orderID: message.orderID, timestamp: record.timestamp,
                        headers: headers, value: record.valueString, redriven: redriven.contains("\(record.partition)/\(record.offset)")))
                }
                offset = last.offset + 1
            }
        }
        return Array(result.sorted { ($0.timestamp, $0.partition, $0.offset) < ($1.timestamp, $1.partition, $1.offset) }.prefix(limit))
    }

    /// One page of a dead-letter topic in (partition, offset) order, after `cursor`
    /// (`partition/offset` of the last letter of the previous page); reads only the page.
    public func page(topic: String, after cursor: String?, limit: Int) async throws -> (letters: [Letter], next: String?) {
        let known = try await deadLetterTopics()
        guard known.contains(topic) else {
            throw StepFailure("UnknownTopic", "\(topic) is not a dead-letter topic; choose one of: \(known.joined(separator: ", "))")
        }
        var start = (partition: 0, offset: Int64(-1))
        if let cursor {
            let parts = cursor.split(separator: "/")
            guard parts.count == 2, let p = Int(parts[0]), let o = Int64(parts[1]), p >= 0, o >= -1 else {
                throw StepFailure("BadCursor", "the cursor '\(cursor)' is not one this list returned (partition/offset)")
            }
            start = (p, o)
        }
        let redriven = Set(try store.connection.query("SELECT partition, offset FROM redriven WHERE topic = ?", [.text(topic)]) { "\($0.int(0))/\($0.int(1))" })
        var result: [Letter] = []
        var hasMore = false
        for partition in try await broker.describeTopic(topic).partitions.sorted(by: { $0.partition < $1.partition }) where partition.partition >= start.partition {
            var offset = max(partition.beginOffset, partition.partition == start.partition ? start.offset + 1 : 0)
            while offset < partition.endOffset {
                if result.count == limit {
                    hasMore = true
                    break
                }
                let records = try await broker.read(topic: topic, partition: partition.partition, from: offset, maxRecords: min(5000, limit - result.count))
                guard let last = records.last else { break }
                for record in records {
                    var headers: [String: String] = [:]
                    for header in record.headers { headers[header.key] = header.stringValue }
                    result.append(Letter(
                        topic: topic, partition: record.partition, offset: record.offset, orderID: InboundMessage.orderID(of: record), timestamp: record.timestamp,
                        headers: headers, value: record.valueString, redriven: redriven.contains("\(record.partition)/\(record.offset)")))
                }
                offset = last.offset + 1
            }
            if hasMore { break }
        }
        return (result, hasMore ? result.last.map { "\($0.partition)/\($0.offset)" } : nil)
    }

    /// Letters not yet redriven per dead-letter topic, without reading the letters: records
    /// held less the redrive marks.
    public func pendingCounts() async throws -> [String: Int] {
        let redriven = Dictionary(uniqueKeysWithValues: try store.connection.query("SELECT topic, COUNT(*) FROM redriven GROUP BY topic") { ($0.text(0), Int($0.int(1))) })
        var result: [String: Int] = [:]
        for topic in try await deadLetterTopics() {
            guard let description = try? await broker.describeTopic(topic) else { continue }
            let held = description.partitions.reduce(0) { $0 + Int($1.endOffset - $1.beginOffset) }
            result[topic] = max(0, held - (redriven[topic] ?? 0))
        }
        return result
    }

    public func summaries() async throws -> [TopicSummary] {
        var result: [TopicSummary] = []
        for topic in try await deadLetterTopics() {
            guard (try? await broker.describeTopic(topic)) != nil else { continue }
            let letters = try await letters(topic: topic)
            var classes: [String: Int] = [:]
            for letter in letters { classes[letter.headers[SagaHeader.errorClass] ?? "unknown", default: 0] += 1 }
            result.append(TopicSummary(topic: topic, depth: letters.count, pending: letters.filter { !$0.redriven }.count, errorClasses: classes))
        }
        return result
    }

    /// Puts dead letters back on the topic they failed on (attempt 1, same idempotency key,
    /// failure headers dropped, `redriven` added). Letters of orders that already finished are
    /// skipped: their compensation already ran, and a redrive could do nothing.
    public func redrive(topics selected: [String], orderID: String?, dryRun: Bool) async throws -> RedriveResult {
        try await redrive(topics: selected, orders: orderID.map { [$0] }, dryRun: dryRun)
    }

    /// The same, for the letters of `orders` (every pending letter when nil).
    public func redrive(topics selected: [String], orders: Set<String>?, dryRun: Bool) async throws -> RedriveResult {
        var redriven: [Letter] = []
        var skipped: [String] = []
        var outgoing: [ProducerRecord] = []
        for topic in selected {
            let candidates = orders?.count == 1 ? try await letters(topic: topic, orderID: orders!.first!) : try await letters(topic: topic)
            for letter in candidates where !letter.redriven && (orders?.contains(letter.orderID) ?? true) {
                if let state = try store.order(letter.orderID)?.state, let parsed = OrderState(rawValue: state), parsed.isFinal {
                    skipped.append("\(letter.topic)/\(letter.partition)/\(letter.offset): order \(letter.orderID) is already \(state)")
                    continue
                }
                let target = letter.headers[SagaHeader.originalTopic] ?? topics.compensation
                var headers = letter.headers.filter { key, _ in
                    ![SagaHeader.attempt, SagaHeader.errorClass, SagaHeader.errorMessage, SagaHeader.failedAt, SagaHeader.originalTopic,
                      SagaHeader.originalPartition, SagaHeader.originalOffset, "retries-exhausted", "on-exhausted", SagaHeader.recoveredBy].contains(key)
                }.map { RecordHeader($0.key, $0.value) }.sorted { $0.key < $1.key }
                headers.append(RecordHeader(SagaHeader.attempt, "1"))
                headers.append(RecordHeader(SagaHeader.redriven, "\(letter.topic)/\(letter.partition)/\(letter.offset)"))
                outgoing.append(ProducerRecord(topic: target, key: Array(letter.orderID.utf8), value: Array(letter.value.utf8), headers: headers))
                redriven.append(letter)
            }
        }
        if !dryRun, !outgoing.isEmpty {
            _ = try await broker.produce(outgoing)
            let now = UnixClock.nowMillis()
            try store.connection.transaction { db in
                for letter in redriven {
                    try db.run("INSERT OR IGNORE INTO redriven VALUES (?, ?, ?, ?)", [.text(letter.topic), .integer(Int64(letter.partition)), .integer(letter.offset), .integer(now)])
                }
            }
        }
        return RedriveResult(redriven: redriven, skipped: skipped, dryRun: dryRun)
    }
}
