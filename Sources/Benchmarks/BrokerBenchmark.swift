import Broker
import Foundation
import Logging
import Messaging
import Synchronization

/// `fulfillment bench broker`: produce N records over P partitions with several concurrent
/// producers, then consume them all with a consumer group, and report rates and
/// acknowledgement latency. Runs against a real data directory on disk.
public struct BrokerBenchmark: Sendable {
    public struct Options: Sendable {
        public var records = 1_000_000
        public var partitions = 12
        public var recordBytes = 200
        public var fsync: FsyncPolicy = .batch
        /// Concurrent producer tasks.
        public var producers = 8
        /// Records per produce call (each call is one acknowledgement).
        public var batchRecords = 500
        /// Members of the consuming group.
        public var consumers = 2
        public var dataDirectory: String

        public init(dataDirectory: String) { self.dataDirectory = dataDirectory }
    }

    public struct Latency: Codable, Sendable {
        public var p50: Double
        public var p99: Double
        public var max: Double
    }

    /// The figures printed by the command (`--json` prints exactly this object).
    public struct Report: Codable, Sendable {
        public var records: Int
        public var partitions: Int
        public var record_bytes: Int
        public var fsync: String
        public var producers: Int
        public var batch_records: Int
        public var consumers: Int
        public var produce_seconds: Double
        public var produce_records_per_s: Double
        public var produce_mb_per_s: Double
        public var ack_latency_ms: Latency
        public var consume_seconds: Double
        public var consume_records_per_s: Double
        public var consume_mb_per_s: Double
        public var bytes_on_disk: Int64
    }

    public let options: Options

    public init(options: Options) { self.options = options }

    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        var configuration = EmbeddedBroker.Configuration(dataDirectory: options.dataDirectory)
        configuration.fsync = options.fsync
        configuration.retentionCheckInterval = nil
        let broker = try EmbeddedBroker(configuration: configuration, logger: Logger(label: "bench"))
        defer { broker.shutdown() }
        let topic = "bench"
        try await broker.createTopic(TopicSpec(name: topic, partitions: options.partitions))

        // Payload: the record's JSON-like body padded to the requested size, key `order-N`.
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: max(1, options.recordBytes - 12))
        progress("producing \(options.records) records of ~\(options.recordBytes) bytes over \(options.partitions) partitions (\(options.producers) producers, \(options.batchRecords) records per produce, fsync \(options.fsync))")
        let produceStart = ContinuousClock.now
        let latencies = try await Self.produceConcurrently(
            to: broker, topic: topic, records: options.records, producers: options.producers, batchRecords: options.batchRecords, payload: payload)
        let produceSeconds = Self.seconds(ContinuousClock.now - produceStart)
        progress("produced in \((produceSeconds * 100).rounded() / 100) s")

        let consumeStart = ContinuousClock.now
        let consumed = try await withThrowingTaskGroup(of: Int.self) { group in
            let target = options.records
            let counter = ConsumedCounter()
            for member in 0..<options.consumers {
                group.addTask {
                    var configuration = ConsumerConfiguration()
                    configuration.clientID = "bench-\(member)"
                    let consumer = try await broker.makeEmbeddedConsumer(group: "bench", topics: [topic], configuration: configuration)
                    var mine = 0
                    while counter.total < target {
                        let records = try await consumer.poll(maxRecords: 20_000, maxWait: .milliseconds(50))
                        if records.isEmpty { continue }
                        mine += records.count
                        counter.add(records.count)
                        try await consumer.commit(records: records)
                    }
                    await consumer.close()
                    return mine
                }
            }
            var total = 0
            for try await part in group { total += part }
            return total
        }
        let consumeSeconds = Self.seconds(ContinuousClock.now - consumeStart)
        guard consumed == options.records else {
            throw BrokerError(.io, "consumed \(consumed) records, expected \(options.records)")
        }
        let description = try await broker.describeTopic(topic)
        let stored = description.partitions.reduce(0) { $0 + $1.endOffset }
        guard stored == Int64(options.records) else {
            throw BrokerError(.io, "the topic holds \(stored) records, expected \(options.records)")
        }
        let bytesOnDisk = Self.directorySize(options.dataDirectory)
        let megabytes = Double(options.records * options.recordBytes) / 1_000_000
        return Report(
            records: options.records, partitions: options.partitions, record_bytes: options.recordBytes,
            fsync: options.fsync.description, producers: options.producers, batch_records: options.batchRecords,
            consumers: options.consumers,
            produce_seconds: produceSeconds, produce_records_per_s: Double(options.records) / produceSeconds,
            produce_mb_per_s: megabytes / produceSeconds,
            ack_latency_ms: Latency(p50: Self.percentile(latencies, 0.50), p99: Self.percentile(latencies, 0.99), max: latencies.last ?? 0),
            consume_seconds: consumeSeconds, consume_records_per_s: Double(options.records) / consumeSeconds,
            consume_mb_per_s: megabytes / consumeSeconds, bytes_on_disk: bytesOnDisk)
    }

    /// Produces records `order-0` ... `order-<records-1>` (keyed by that name, `payload` as
    /// value) from `producers` concurrent tasks, `batchRecords` per call; returns every call's
    /// acknowledgement latency in milliseconds, sorted.
    static func produceConcurrently(
        to broker: any MessageBroker, topic: String, records: Int, producers: Int, batchRecords: Int, payload: [UInt8]
    ) async throws -> [Double] {
        let perProducer = (records + producers - 1) / producers
        return try await withThrowingTaskGroup(of: [Double].self) { group in
            for producer in 0..<producers {
                let first = producer * perProducer
                let last = min(records, first + perProducer)
                group.addTask {
                    var latencies: [Double] = []
                    var next = first
                    var batch: [ProducerRecord] = []
                    batch.reserveCapacity(batchRecords)
                    while next < last {
                        batch.removeAll(keepingCapacity: true)
                        let end = min(last, next + batchRecords)
                        for n in next..<end { batch.append(ProducerRecord(topic: topic, key: Array("order-\(n)".utf8), value: payload)) }
                        let sent = ContinuousClock.now
                        _ = try await broker.produce(batch)
                        latencies.append(milliseconds(ContinuousClock.now - sent))
                        next = end
                    }
                    return latencies
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all.sorted()
        }
    }

    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * q))]
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func milliseconds(_ d: Duration) -> Double { seconds(d) * 1000 }

    static func directorySize(_ path: String) -> Int64 {
        var total: Int64 = 0
        let files = FileManager.default.enumerator(at: URL(fileURLWithPath: path), includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey])
        while let file = files?.nextObject() as? URL {
            guard let values = try? file.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey]), values.isRegularFile == true else { continue }
            total += Int64(values.fileSize ?? 0)
        }
        return total
    }
}

private final class ConsumedCounter: Sendable {
    private let value = Atomic<Int>(0)
    var total: Int { value.load(ordering: .relaxed) }
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
}
