import Broker
import Logging

/// Answers Kafka protocol requests from the embedded broker's storage. One instance serves
/// every connection; each connection's requests are handled one after another, in order.
///
/// This first slice speaks what a producing and a group-less consuming client needs:
/// ApiVersions 0-3, Metadata 0-4, Produce 3-7, Fetch 4-11, ListOffsets 1-2, CreateTopics 0-4.
/// Record batches
/// are verified (magic 2, CRC-32C) and their records appended; compressed batches are refused
/// with UNSUPPORTED_COMPRESSION_TYPE.
public struct KafkaRequestHandler: Sendable {
    public struct Versions: Sendable {
        var key: Int16
        var min: Int16
        var max: Int16
    }

    static let apiVersions: Int16 = 18
    static let metadata: Int16 = 3
    static let produce: Int16 = 0
    static let fetch: Int16 = 1
    static let listOffsets: Int16 = 2
    static let createTopics: Int16 = 19

    /// What this listener speaks, as ApiVersions reports it.
    public static let supported: [Versions] = [
        Versions(key: produce, min: 3, max: 7),
        Versions(key: fetch, min: 4, max: 11),
        Versions(key: listOffsets, min: 1, max: 2),
        Versions(key: metadata, min: 0, max: 4),
        Versions(key: apiVersions, min: 0, max: 3),
        Versions(key: createTopics, min: 0, max: 4),
    ]

    enum ErrorCode: Int16 {
        case none = 0
        case offsetOutOfRange = 1
        case corruptMessage = 2
        case unknownTopicOrPartition = 3
        case messageTooLarge = 10
        case invalidTopic = 17
        case topicAlreadyExists = 36
        case invalidPartitions = 37
        case invalidReplicationFactor = 38
        case unsupportedVersion = 35
        case invalidRequest = 42
        case kafkaStorageError = 56
        case unsupportedCompressionType = 76
        case unknownServerError = -1
    }

    let broker: EmbeddedBroker
    let host: String
    let port: Int32
    let nodeID: Int32 = 1
    /// The longest a Fetch may wait for data, whatever it asks.
    let maxFetchWaitMilliseconds: Int32
    let logger: Logger

    public init(broker: EmbeddedBroker, advertisedHost: String, advertisedPort: Int, maxFetchWaitMilliseconds: Int32 = 30_000, logger: Logger) {
        self.broker = broker
        host = advertisedHost
        port = Int32(advertisedPort)
        self.maxFetchWaitMilliseconds = maxFetchWaitMilliseconds
        self.logger = logger
    }

    /// The response to one request frame (without its length prefix), `nil` when the request
    /// wants none (Produce with acks=0). Throws `WireError` when the connection should close.
    public func respond(to frame: [UInt8]) async throws -> [UInt8]? {
        var r = WireReader(frame)
        let key = try r.int16()
        let version = try r.int16()
        let correlationID = try r.int32()
        _ = try r.nullableString()  // client id
        guard let range = Self.supported.first(where: { $0.key == key }) else {
            throw WireError(description: "unknown or unsupported API key \(key) (version \(version))")
        }
        var w = WireWriter()
        w.int32(correlationID)
        if key == Self.apiVersions {
            // Out of range: answer in v0 form with UNSUPPORTED_VERSION, so the client retries lower.
            let answered = version > range.max ? 0 : version
            if version >= 3 && version <= range.max { try r.taggedFields() }
            writeApiVersions(&w, version: answered, error: version > range.max ? .unsupportedVersion : .none)
            return w.bytes
        }
        guard version >= range.min && version <= range.max else {
            throw WireError(description: "API key \(key) version \(version) is outside \(range.min)-\(range.max)")
        }
        switch key {
        case Self.metadata: try await writeMetadata(&w, &r, version: version)
        case Self.produce:
            let acks = try await writeProduce(&w, &r, version: version)
            if acks == 0 { return nil }
        case Self.fetch: try await writeFetch(&w, &r, version: version)
        case Self.listOffsets: try await writeListOffsets(&w, &r, version: version)
        case Self.createTopics: try await writeCreateTopics(&w, &r, version: version)
        default: throw WireError(description: "API key \(key) is not served")
        }
        return w.bytes
    }

    /// The named topics that exist, described (only those: a request names a few topics,
    /// and Fetch asks again on every round of its long poll).
    func describe(_ names: some Sequence<String>) async -> [String: TopicDescription] {
        var found: [String: TopicDescription] = [:]
        for name in Set(names) {
            if let topic = try? await broker.describeTopic(name) { found[name] = topic }
        }
        return found
    }

    // MARK: ApiVersions

    func writeApiVersions(_ w: inout WireWriter, version: Int16, error: ErrorCode) {
        w.int16(error.rawValue)
        if version >= 3 {
            w.unsignedVarint(UInt32(Self.supported.count + 1))
            for v in Self.supported {
                w.int16(v.key); w.int16(v.min); w.int16(v.max)
                w.unsignedVarint(0)
            }
            w.int32(0)  // throttle
            w.unsignedVarint(0)
        } else {
            w.array(Self.supported) { w, v in w.int16(v.key); w.int16(v.min); w.int16(v.max) }
            if version >= 1 { w.int32(0) }
        }
    }

    // MARK: Metadata

    func writeMetadata(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        let count = try r.arrayCount()
        var names: [String]? = nil
        if count >= 0 {
            names = try (0..<count).map { _ in try r.string() }
            if version == 0 && names!.isEmpty { names = nil }
        }
        if version >= 4 { _ = try r.int8() }  // allow_auto_topic_creation: topics are created on purpose only
        let topics = try await broker.listTopics()
        let known = Dictionary(uniqueKeysWithValues: topics.map { ($0.name, $0) })
        if version >= 3 { w.int32(0) }
        w.int32(1)
        w.int32(nodeID)
        w.string(host)
        w.int32(port)
        if version >= 1 { w.string(nil) }  // rack
        if version >= 2 { w.string("fulfillment-embedded") }
        if version >= 1 { w.int32(nodeID) }
        let wanted = names ?? topics.map(\.name)
        w.int32(Int32(wanted.count))
        for name in wanted {
            guard let topic = known[name] else {
                w.int16(ErrorCode.unknownTopicOrPartition.rawValue)
                w.string(name)
                if version >= 1 { w.bool(false) }
                w.int32(0)
                continue
            }
            w.int16(0)
            w.string(name)
            if version >= 1 { w.bool(false) }
            w.int32(Int32(topic.partitions.count))
            for p in topic.partitions {
                w.int16(0)
                w.int32(Int32(p.partition))
                w.int32(nodeID)
                w.array([nodeID]) { $0.int32($1) }
                w.array([nodeID]) { $0.int32($1) }
            }
        }
    }

    // MARK: Produce

    /// Returns the request's acks.
    func writeProduce(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws -> Int16 {
        _ = try r.nullableString()  // transactional id
        let acks = try r.int16()
        _ = try r.int32()  // timeout
        let topicCount = try r.arrayCount()
        var results: [(String, [(Int32, ErrorCode, Int64)])] = []
        for _ in 0..<max(topicCount, 0) {
            let topic = try r.string()
            let partitionCount = try? await broker.describeTopic(topic).partitions.count
            var partitions: [(Int32, ErrorCode, Int64)] = []
            for _ in 0..<max(try r.arrayCount(), 0) {
                let partition = try r.int32()
                let records = try r.nullableBytes() ?? []
                guard let count = partitionCount, partition >= 0, Int(partition) < count else {
                    partitions.append((partition, .unknownTopicOrPartition, -1))
                    continue
                }
                do {
                    let decoded = try Self.decodeBatches(records, topic: topic, partition: Int(partition))
                    guard !decoded.isEmpty else {
                        partitions.append((partition, .none, -1))
                        continue
                    }
                    let acked = try await broker.produce(decoded)
                    partitions.append((partition, .none, acked.first?.offset ?? -1))
                } catch let error as ProduceRefusal {
                    logger.notice("produce refused", metadata: ["topic": "\(topic)", "partition": "\(partition)", "reason": "\(error.reason)"])
                    partitions.append((partition, error.code, -1))
                } catch {
                    logger.error("produce failed", metadata: ["topic": "\(topic)", "error": "\(error)"])
                    partitions.append((partition, .kafkaStorageError, -1))
                }
            }
            results.append((topic, partitions))
        }
        w.array(results) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, p in
                w.int32(p.0)
                w.int16(p.1.rawValue)
                w.int64(p.2)
                w.int64(-1)  // log append time: create time is used
                if version >= 5 { w.int64(0) }  // log start offset
            }
        }
        w.int32(0)  // throttle
        return acks
    }

    struct ProduceRefusal: Error {
        var code: ErrorCode
        var reason: String
    }

    /// The records of the v2 batches in a Produce request, each batch's CRC-32C checked.
    static func decodeBatches(_ bytes: [UInt8], topic: String, partition: Int) throws -> [ProducerRecord] {
        var records: [ConsumerRecord] = []
        try bytes.withUnsafeBytes { raw in
            var position = 0
            while position < raw.count {
                let rest = UnsafeRawBufferPointer(rebasing: raw[position...])
                guard rest.count >= RecordBatchHeader.size else { throw ProduceRefusal(code: .corruptMessage, reason: "truncated record batch") }
                let header = try RecordBatchHeader.parse(rest)
                guard header.magic == 2 else { throw ProduceRefusal(code: .corruptMessage, reason: "record batch magic \(header.magic); only v2 batches are accepted") }
                guard header.totalSize <= rest.count, header.batchLength > 0 else { throw ProduceRefusal(code: .corruptMessage, reason: "record batch length \(header.batchLength) overruns the request") }
                let batch = UnsafeRawBufferPointer(rebasing: rest[..<header.totalSize])
                guard RecordBatchHeader.hasValidChecksum(batch, header: header) else { throw ProduceRefusal(code: .corruptMessage, reason: "CRC-32C mismatch") }
                guard header.compressionCodec == 0 else { throw ProduceRefusal(code: .unsupportedCompressionType, reason: "compressed batches (codec \(header.compressionCodec)) are not accepted yet") }
                var nextDue: Int64?
                do {
                    _ = try RecordBatchCodec.decodeRecords(batch: batch, header: header, topic: topic, partition: partition, fromOffset: header.baseOffset, into: &records, nextDue: &nextDue)
                } catch {
                    throw ProduceRefusal(code: .corruptMessage, reason: "\(error)")
                }
                position += header.totalSize
            }
        }
        return records.map { ProducerRecord(topic: topic, partition: partition, key: $0.key, value: $0.value, headers: $0.headers, timestamp: $0.timestamp) }
    }

    // MARK: Fetch

    func writeFetch(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        _ = try r.int32()  // replica
        let maxWait = try r.int32()
        _ = try r.int32()  // min bytes
        let maxBytes = try r.int32()
        _ = try r.int8()  // isolation
        if version >= 7 { _ = try r.int32(); _ = try r.int32() }  // session id, epoch
        struct Wanted { var topic: String; var partition: Int32; var offset: Int64; var maxBytes: Int32 }
        var wanted: [Wanted] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            let topic = try r.string()
            for _ in 0..<max(try r.arrayCount(), 0) {
                let partition = try r.int32()
                if version >= 9 { _ = try r.int32() }  // current leader epoch
                let offset = try r.int64()
                if version >= 5 { _ = try r.int64() }  // log start offset
                let partitionMaxBytes = try r.int32()
                wanted.append(Wanted(topic: topic, partition: partition, offset: offset, maxBytes: partitionMaxBytes))
            }
        }
        // Long poll: wait (without holding anything) until some partition has data or max_wait passed.
        let deadline = ContinuousClock.now + .milliseconds(Int(max(0, min(maxWait, maxFetchWaitMilliseconds))))
        var answers: [(Wanted, ErrorCode, PartitionDescription?, [UInt8]?)] = []
        while true {
            answers = []
            var budget = Int(max(maxBytes, 1))
            var any = false
            let topics = await describe(wanted.map(\.topic))
            for want in wanted {
                guard let topic = topics[want.topic], want.partition >= 0, Int(want.partition) < topic.partitions.count else {
                    answers.append((want, .unknownTopicOrPartition, nil, nil))
                    continue
                }
                let p = topic.partitions[Int(want.partition)]
                guard want.offset >= p.beginOffset, want.offset <= p.endOffset else {
                    answers.append((want, .offsetOutOfRange, p, nil))
                    continue
                }
                var batches: [UInt8] = []
                if want.offset < p.endOffset && budget > 0 {
                    let limit = max(1, min(Int(want.maxBytes), budget) / 64)
                    let records = try await broker.read(topic: want.topic, partition: Int(want.partition), from: want.offset, maxRecords: min(limit, 5000))
                    batches = Self.encodeBatches(records)
                    budget -= batches.count
                    any = any || !records.isEmpty
                }
                answers.append((want, .none, p, batches))
            }
            if any || ContinuousClock.now >= deadline || wanted.isEmpty { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        w.int32(0)  // throttle
        if version >= 7 { w.int16(0); w.int32(0) }  // error, session id
        var byTopic: [(String, [(Wanted, ErrorCode, PartitionDescription?, [UInt8]?)])] = []
        for answer in answers {
            if let i = byTopic.firstIndex(where: { $0.0 == answer.0.topic }) { byTopic[i].1.append(answer) } else { byTopic.append((answer.0.topic, [answer])) }
        }
        w.array(byTopic) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, a in
                w.int32(a.0.partition)
                w.int16(a.1.rawValue)
                w.int64(a.2?.endOffset ?? -1)
                w.int64(a.2?.endOffset ?? -1)  // last stable offset: no transactions
                if version >= 5 { w.int64(a.2?.beginOffset ?? -1) }
                w.int32(-1)  // aborted transactions: null
                if version >= 11 { w.int32(-1) }  // preferred read replica
                w.nullableBytes(a.3 ?? [])
            }
        }
    }

    /// Records as v2 batches, one per run of consecutive offsets.
    static func encodeBatches(_ records: [ConsumerRecord]) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        while start < records.count {
            var end = start + 1
            while end < records.count && records[end].offset == records[end - 1].offset + 1 { end += 1 }
            let run = records[start..<end].map {
                ProducerRecord(topic: $0.topic, partition: $0.partition, key: $0.key, value: $0.value, headers: $0.headers, timestamp: $0.timestamp)
            }
            out += RecordBatchCodec.encode(run, baseOffset: records[start].offset, defaultTimestamp: records[start].timestamp)
            start = end
        }
        return out
    }

    // MARK: CreateTopics

    func writeCreateTopics(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        struct Wanted { var name: String; var partitions: Int32; var replication: Int16 }
        var wanted: [Wanted] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            let name = try r.string()
            let partitions = try r.int32()
            let replication = try r.int16()
            for _ in 0..<max(try r.arrayCount(), 0) {  // manual assignments: one broker, nothing to place
                _ = try r.int32()
                for _ in 0..<max(try r.arrayCount(), 0) { _ = try r.int32() }
            }
            for _ in 0..<max(try r.arrayCount(), 0) { _ = try r.string(); _ = try r.nullableString() }
            wanted.append(Wanted(name: name, partitions: partitions, replication: replication))
        }
        _ = try r.int32()  // timeout
        let validateOnly = version >= 1 ? try r.int8() != 0 : false
        var results: [(String, ErrorCode, String?)] = []
        for topic in wanted {
            let partitions = topic.partitions == -1 ? 1 : Int(topic.partitions)
            if partitions <= 0 {
                results.append((topic.name, .invalidPartitions, "partitions must be positive"))
            } else if topic.replication > 1 {
                results.append((topic.name, .invalidReplicationFactor, "replication factor \(topic.replication) is larger than the 1 broker"))
            } else if (try? TopicSpec.validateName(topic.name)) == nil {
                results.append((topic.name, .invalidTopic, "invalid topic name"))
            } else if (try? await broker.describeTopic(topic.name)) != nil {
                results.append((topic.name, .topicAlreadyExists, "topic \(topic.name) already exists"))
            } else if validateOnly {
                results.append((topic.name, .none, nil))
            } else {
                do {
                    try await broker.createTopic(TopicSpec(name: topic.name, partitions: partitions))
                    logger.notice("topic created over the wire", metadata: ["topic": "\(topic.name)", "partitions": "\(partitions)"])
                    results.append((topic.name, .none, nil))
                } catch {
                    results.append((topic.name, .kafkaStorageError, "\(error)"))
                }
            }
        }
        if version >= 2 { w.int32(0) }
        w.array(results) { w, result in
            w.string(result.0)
            w.int16(result.1.rawValue)
            if version >= 1 { w.string(result.2) }
        }
    }

    // MARK: ListOffsets

    func writeListOffsets(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        _ = try r.int32()  // replica
        if version >= 2 { _ = try r.int8() }
        var asked: [(String, [(Int32, Int64)])] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            let topic = try r.string()
            var partitions: [(Int32, Int64)] = []
            for _ in 0..<max(try r.arrayCount(), 0) { partitions.append((try r.int32(), try r.int64())) }
            asked.append((topic, partitions))
        }
        let topics = await describe(asked.map(\.0))
        var answers: [(String, [(Int32, ErrorCode, Int64, Int64)])] = []
        for (name, partitions) in asked {
            var rows: [(Int32, ErrorCode, Int64, Int64)] = []
            for (partition, timestamp) in partitions {
                guard let topic = topics[name], partition >= 0, Int(partition) < topic.partitions.count else {
                    rows.append((partition, .unknownTopicOrPartition, -1, -1))
                    continue
                }
                let p = topic.partitions[Int(partition)]
                switch timestamp {
                case -1: rows.append((partition, .none, -1, p.endOffset))
                case -2: rows.append((partition, .none, -1, p.beginOffset))
                default:
                    let found = try await firstOffset(atOrAfter: timestamp, topic: name, partition: Int(partition), from: p.beginOffset, to: p.endOffset)
                    rows.append((partition, .none, found?.1 ?? -1, found?.0 ?? -1))
                }
            }
            answers.append((name, rows))
        }
        if version >= 2 { w.int32(0) }
        w.array(answers) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, row in
                w.int32(row.0)
                w.int16(row.1.rawValue)
                w.int64(row.2)
                w.int64(row.3)
            }
        }
    }

    /// The first offset whose timestamp is at or after `timestamp` (a scan: fine for the
    /// inspection tools that ask).
    func firstOffset(atOrAfter timestamp: Int64, topic: String, partition: Int, from: Int64, to end: Int64) async throws -> (Int64, Int64)? {
        var offset = from
        while offset < end {
            let records = try await broker.read(topic: topic, partition: partition, from: offset, maxRecords: 2000)
            guard let last = records.last else { return nil }
            if let hit = records.first(where: { $0.timestamp >= timestamp }) { return (hit.offset, hit.timestamp) }
            offset = last.offset + 1
        }
        return nil
    }
}
