import Foundation
import KafkaClient
import Logging
import Messaging

/// `fulfillment bench kafka-producer`: the librdkafka client's producer throughput through
/// the broker abstraction (idempotent, `acks=all`, delivery reports awaited per call), against
/// librdkafka's mock cluster in this process or a real cluster.
public struct KafkaProducerBenchmark: Sendable {
    public struct Options: Sendable {
        public var records = 1_000_000
        public var recordBytes = 100
        public var partitions = 12
        public var producers = 4
        public var batchRecords = 10_000
        /// `nil`: start a 3-broker mock cluster in this process.
        public var kafka: KafkaConfiguration?
        /// How long to wait for a given cluster to answer before starting.
        public var connectTimeout: Duration = .seconds(30)
        public var topic = "bench.kafka-producer"

        public init() {}
    }

    public struct Report: Codable, Sendable {
        public var records: Int
        public var record_bytes: Int
        public var partitions: Int
        public var producers: Int
        public var batch_records: Int
        public var cluster: String
        public var seconds: Double
        public var records_per_s: Double
        public var mb_per_s: Double
        public var ack_latency_ms: BrokerBenchmark.Latency
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> Report {
        var mock: KafkaMockCluster?
        let kafka: KafkaConfiguration
        if let given = options.kafka {
            kafka = given
        } else {
            let cluster = try KafkaMockCluster(brokers: 3)
            try cluster.createTopic(options.topic, partitions: options.partitions)
            mock = cluster
            kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        }
        defer { _ = mock }
        let broker = try KafkaClusterClient(configuration: kafka, clientID: "bench", logger: Logger(label: "bench"))
        defer { broker.shutdown() }
        if options.kafka != nil {
            _ = try await BrokerWait.retrying("reading cluster metadata", target: "the Kafka cluster at \(kafka.bootstrapServers)", timeout: options.connectTimeout, status: progress) {
                try await broker.listTopics()
            }
            try await broker.createTopic(TopicSpec(name: options.topic, partitions: options.partitions))
        }
        let topic = options.topic
        let options = options
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: max(1, options.recordBytes - 12))
        // Warm-up: connections, metadata and the idempotent producer id are in place before timing.
        _ = try await broker.produce(ProducerRecord(topic: topic, key: Array("warm-up".utf8), value: payload))
        let before = try await broker.describeTopic(topic).partitions.reduce(Int64(0)) { $0 + $1.endOffset }
        progress("producing \(options.records) records of ~\(options.recordBytes) bytes to \(mock == nil ? kafka.bootstrapServers : "a 3-broker mock cluster") (\(options.producers) producers, \(options.batchRecords) records per call)")
        let start = ContinuousClock.now
        let latencies = try await BrokerBenchmark.produceConcurrently(
            to: broker, topic: topic, records: options.records, producers: options.producers, batchRecords: options.batchRecords, payload: payload)
        let seconds = BrokerBenchmark.seconds(ContinuousClock.now - start)
        let after = try await broker.describeTopic(topic).partitions.reduce(Int64(0)) { $0 + $1.endOffset }
        guard after - before == Int64(options.records) else {
            throw BrokerError(.io, "the cluster acknowledged \(after - before) records, expected \(options.records)")
        }
        return Report(
            records: options.records, record_bytes: options.recordBytes, partitions: options.partitions, producers: options.producers,
            batch_records: options.batchRecords, cluster: mock == nil ? kafka.bootstrapServers : "librdkafka mock, 3 brokers",
            seconds: seconds, records_per_s: Double(options.records) / seconds,
            mb_per_s: Double(options.records * options.recordBytes) / 1_000_000 / seconds,
            ack_latency_ms: BrokerBenchmark.Latency(
                p50: BrokerBenchmark.percentile(latencies, 0.5), p99: BrokerBenchmark.percentile(latencies, 0.99), max: latencies.last ?? 0))
    }
}
