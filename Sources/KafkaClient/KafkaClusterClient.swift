import CRdKafka
import Foundation
import IOThreads
import Logging
import Messaging
import Synchronization

/// The broker abstraction on a Kafka cluster through librdkafka. Workers and the dispatcher
/// run unchanged on it.
///
/// Kafka has no delayed topics; the delays of retry tiers are given to the client
/// (`topicDelays`, from the saga's topology) and each consumer holds records back until due.
public final class KafkaClusterClient: MessageBroker, @unchecked Sendable {
    // Safe: every stored property is a `let`; `delays` is a `Mutex`, the producer is itself
    // thread-safe (see `KafkaProducer`).
    public let configuration: KafkaConfiguration
    private let producer: KafkaProducer
    private let delays: Mutex<[String: Int64]>
    private let logger: Logger

    public init(configuration: KafkaConfiguration, topicDelays: [String: Int64] = [:], clientID: String = "fulfillment", logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        delays = Mutex(topicDelays.filter { $0.value > 0 })
        producer = try KafkaProducer(configuration: configuration, clientID: clientID)
    }

    /// Flushes what is queued and frees the client.
    public func shutdown() {
        producer.close()
    }

    /// Adds the delivery delays of topics (retry tiers) consumers must honour.
    public func registerDelays(_ specs: [TopicSpec]) {
        delays.withLock { delays in
            for spec in specs where spec.deliveryDelayMilliseconds > 0 { delays[spec.name] = spec.deliveryDelayMilliseconds }
        }
    }

    private var handleBits: UInt { UInt(bitPattern: producer.handle) }

    // MARK: Admin

    public func createTopic(_ spec: TopicSpec) async throws {
        try TopicSpec.validateName(spec.name)
        registerDelays([spec])
        let handleBits = handleBits
        try await BlockingIO.run {
            let handle = OpaquePointer(bitPattern: handleBits)!
            var message = [CChar](repeating: 0, count: 512)
            guard let newTopic = rd_kafka_NewTopic_new(spec.name, Int32(spec.partitions), -1, &message, message.count) else {
                throw BrokerError(.invalidConfiguration, "topic \(spec.name): \(KafkaConfiguration.text(message))")
            }
            defer { rd_kafka_NewTopic_destroy(newTopic) }
            if let bytes = spec.retentionBytes { rd_kafka_NewTopic_set_config(newTopic, "retention.bytes", "\(bytes)") }
            if let millis = spec.retentionMilliseconds { rd_kafka_NewTopic_set_config(newTopic, "retention.ms", "\(millis)") }
            let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
            defer { rd_kafka_AdminOptions_destroy(options) }
            rd_kafka_AdminOptions_set_operation_timeout(options, 30_000, &message, message.count)
            rd_kafka_AdminOptions_set_request_timeout(options, 30_000, &message, message.count)
            let queue = rd_kafka_queue_new(handle)
            defer { rd_kafka_queue_destroy(queue) }
            var topics: [OpaquePointer?] = [newTopic]
            rd_kafka_CreateTopics(handle, &topics, 1, options, queue)
            guard let event = rd_kafka_queue_poll(queue, 40_000) else {
                throw BrokerError(BrokerError.Code(name: "kafka_timed_out", isRetriable: true), "creating topic \(spec.name): no answer from the cluster in 40 s")
            }
            defer { rd_kafka_event_destroy(event) }
            let eventError = rd_kafka_event_error(event)
            if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw BrokerError.kafka(eventError, "creating topic \(spec.name)")
            }
            var count = 0
            let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
            for i in 0..<count {
                let code = rd_kafka_topic_result_error(results![i])
                if code == RD_KAFKA_RESP_ERR_NO_ERROR { continue }
                if code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                    let existing = try Self.metadata(handle, topic: spec.name).first
                    if existing?.partitions == spec.partitions { return }
                    throw BrokerError(.topicExists, "topic \(spec.name) exists with \(existing?.partitions ?? 0) partitions, not \(spec.partitions)")
                }
                throw BrokerError.kafka(code, "creating topic \(spec.name)")
            }
        }
    }

    public func listTopics() async throws -> [TopicDescription] {
        let handleBits = handleBits
        let delays = delays.withLock { $0 }
        return try await BlockingIO.run {
            let handle = OpaquePointer(bitPattern: handleBits)!
            return try Self.metadata(handle, topic: nil)
                .filter { !$0.name.hasPrefix("__") }
                .map { try Self.describe(handle, $0, delays: delays) }
                .sorted { $0.name < $1.name }
        }
    }

    public func describeTopic(_ name: String) async throws -> TopicDescription {
        let handleBits = handleBits
        let delays = delays.withLock { $0 }
        return try await BlockingIO.run {
            let handle = OpaquePointer(bitPattern: handleBits)!
            guard let topic = try Self.metadata(handle, topic: name).first else {
                throw BrokerError(.unknownTopic, "unknown topic \(name)")
            }
            return try Self.describe(handle, topic, delays: delays)
        }
    }

    struct TopicMetadata {
        var name: String
        var partitions: Int
    }

    /// Topics the cluster knows; with a name, only that one (an unknown name is an error).
    /// Always asks for every topic: a request naming one makes some clusters create it.
    static func metadata(_ handle: OpaquePointer, topic name: String?) throws -> [TopicMetadata] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle, 1, nil, &metadata, 10_000)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw BrokerError.kafka(error, "reading cluster metadata")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var topics: [TopicMetadata] = []
        for i in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[i]
            let topicName = String(cString: topic.topic)
            guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR, name == nil || name == topicName else { continue }
            topics.append(TopicMetadata(name: topicName, partitions: Int(topic.partition_cnt)))
        }
        if let name, topics.isEmpty { throw BrokerError(.unknownTopic, "unknown topic \(name)") }
        return topics
    }

    static func describe(_ handle: OpaquePointer, _ topic: TopicMetadata, delays: [String: Int64]) throws -> TopicDescription {
        var partitions: [PartitionDescription] = []
        for partition in 0..<topic.partitions {
            let (low, high) = try watermarks(handle, TopicPartition(topic.name, partition))
            partitions.append(PartitionDescription(partition: partition, beginOffset: low, endOffset: high))
        }
        return TopicDescription(
            spec: TopicSpec(name: topic.name, partitions: topic.partitions, deliveryDelayMilliseconds: delays[topic.name] ?? 0),
            partitions: partitions)
    }

    static func watermarks(_ handle: OpaquePointer, _ tp: TopicPartition) throws -> (Int64, Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        let error = rd_kafka_query_watermark_offsets(handle, tp.topic, Int32(tp.partition), &low, &high, 10_000)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw BrokerError.kafka(error, "reading the offsets of \(tp)") }
        return (low, high)
    }

    // MARK: Producing and consuming

    public func produce(_ records: [ProducerRecord]) async throws -> [RecordMetadata] {
        try await producer.produce(records)
    }

    public func makeConsumer(group: String, topics: [String], configuration consumer: ConsumerConfiguration) async throws -> any GroupConsumer {
        try KafkaGroupConsumer(
            configuration: configuration, group: group, topics: topics, consumer: consumer, delays: delays.withLock { $0 }, logger: logger)
    }

    /// A short-lived consumer without group membership, for reads and offset lookups.
    private func standaloneConsumer(group: String?) throws -> OpaquePointer {
        var defaults: [(String, String)] = [("enable.auto.commit", "false"), ("enable.partition.eof", "false"), ("log.connection.close", "false")]
        defaults.append(("group.id", group ?? "fulfillment-reader-\(UUID().uuidString)"))
        let conf = try configuration.makeConf(defaults: defaults)
        var message = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &message, message.count) else {
            rd_kafka_conf_destroy(conf)
            throw BrokerError(.invalidConfiguration, "cannot create a Kafka consumer: \(KafkaConfiguration.text(message))")
        }
        return handle
    }

    public func read(topic: String, partition: Int, from offset: Int64, maxRecords: Int) async throws -> [ConsumerRecord] {
        let handleBits = UInt(bitPattern: try standaloneConsumer(group: nil))
        return try await BlockingIO.run {
            let handle = OpaquePointer(bitPattern: handleBits)!
            defer {
                _ = rd_kafka_consumer_close(handle)
                rd_kafka_destroy(handle)
            }
            let tp = TopicPartition(topic, partition)
            let (low, high) = try Self.watermarks(handle, tp)
            let start = max(offset, low)
            guard start < high, maxRecords > 0 else { return [] }
            let list = KafkaPartitionList.make([(tp, start)])
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let error = rd_kafka_assign(handle, list)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw BrokerError.kafka(error, "reading \(tp)") }
            let wanted = Int(min(Int64(maxRecords), high - start))
            var records: [ConsumerRecord] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while records.count < wanted, ContinuousClock.now < deadline {
                guard let message = rd_kafka_consumer_poll(handle, 200) else { continue }
                defer { rd_kafka_message_destroy(message) }
                if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR { continue }
                records.append(KafkaGroupConsumer.record(message))
            }
            return records
        }
    }

    /// librdkafka's committed offsets name only the partitions the group committed on, so
    /// each topic asked for, or committed on anywhere, has all its partitions listed, those
    /// without a commit from their low watermark. (A group's live members' subscriptions are
    /// not read here: the saga passes its groups' topics.)
    public func lag(group: String, topics wanted: [String]) async throws -> [PartitionLag] {
        let handleBits = UInt(bitPattern: try standaloneConsumer(group: group))
        return try await BlockingIO.run {
            let handle = OpaquePointer(bitPattern: handleBits)!
            defer { rd_kafka_destroy(handle) }
            let topics = try Self.metadata(handle, topic: nil).filter { !$0.name.hasPrefix("__") }
            let all = topics.flatMap { topic in (0..<topic.partitions).map { (TopicPartition(topic.name, $0), Int64(RD_KAFKA_OFFSET_INVALID)) } }
            guard !all.isEmpty else { return [] }
            let list = KafkaPartitionList.make(all)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let error = rd_kafka_committed(handle, list, 10_000)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw BrokerError.kafka(error, "reading committed offsets of group \(group)") }
            let entries = KafkaPartitionList.entries(list)
            let listed = Set(wanted).union(entries.filter { $0.1 >= 0 }.map(\.0.topic))
            var lags: [PartitionLag] = []
            for (tp, committed, _) in entries where listed.contains(tp.topic) {
                let (low, high) = try Self.watermarks(handle, tp)
                lags.append(PartitionLag(group: group, topic: tp.topic, partition: tp.partition, committedOffset: committed >= 0 ? committed : nil, beginOffset: low, endOffset: high))
            }
            return lags.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        }
    }

    public func listGroups() async throws -> [String] {
        let handleBits = handleBits
        return try await BlockingIO.run {
            var groups: UnsafePointer<rd_kafka_group_list>?
            let error = rd_kafka_list_groups(OpaquePointer(bitPattern: handleBits)!, nil, &groups, 10_000)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let groups else { throw BrokerError.kafka(error, "listing consumer groups") }
            defer { rd_kafka_group_list_destroy(groups) }
            return (0..<Int(groups.pointee.group_cnt)).map { String(cString: groups.pointee.groups[$0].group) }.sorted()
        }
    }
}
