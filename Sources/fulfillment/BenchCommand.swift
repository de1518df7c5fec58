import ArgumentParser
import Benchmarks
import Broker
import Foundation
import Messaging
import SagaAssembly

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print their figures (and --json).",
        subcommands: [BrokerBench.self, KafkaProducerBench.self, JSONBench.self]
    )
}

struct BrokerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Produce then group-consume records on the embedded broker, on disk.",
        discussion: """
            Produces --records records of about --record-bytes bytes, keyed so murmur2 spreads them over --partitions partitions, from --producers concurrent producers each sending --batch records per produce call (one acknowledgement per call). Then a consumer group of --consumers members reads them all back, committing after every poll. Reports records/s and MB/s both ways and the produce acknowledgement latency. The data directory is a fresh temporary folder, removed afterwards, unless --data-dir is given.
            """
    )

    @Option(help: "Records to produce.") var records = 1_000_000
    @Option(help: "Partitions of the benchmark topic.") var partitions = 12
    @Option(help: "Approximate size of each record's value, in bytes.") var recordBytes = 200
    @Option(help: "Durability: always, batch (group commit), interval:MS, never.") var fsync: FsyncPolicy = .batch
    @Option(help: "Concurrent producer tasks.") var producers = 8
    @Option(help: "Records per produce call.") var batch = 500
    @Option(help: "Members of the consumer group.") var consumers = 2
    @Option(help: "Data directory to use (kept afterwards).") var dataDir: String?
    @Flag(help: "Print one JSON object with the figures.") var json = false

    func validate() throws {
        guard records > 0, partitions > 0, recordBytes > 0, producers > 0, batch > 0, consumers > 0 else {
            throw ValidationError("--records, --partitions, --record-bytes, --producers, --batch and --consumers must be positive")
        }
    }

    func run() async throws {
        try await reportingFailures {
            let directory = dataDir ?? NSTemporaryDirectory() + "fulfillment-bench-\(ProcessInfo.processInfo.processIdentifier)"
            if dataDir == nil { try? FileManager.default.removeItem(atPath: directory) }
            defer { if dataDir == nil { try? FileManager.default.removeItem(atPath: directory) } }
            var options = BrokerBenchmark.Options(dataDirectory: directory)
            options.records = records
            options.partitions = partitions
            options.recordBytes = recordBytes
            options.fsync = fsync
            options.producers = producers
            options.batchRecords = batch
            options.consumers = consumers
            let quiet = json
            let report = try await BrokerBenchmark(options: options).run { if !quiet { writeStderr($0) } }
            if json {
                try printJSON(report)
            } else {
                print("""
                    records            \(report.records) x ~\(report.record_bytes) B over \(report.partitions) partitions, fsync \(report.fsync)
                    produce            \(Int(report.produce_records_per_s)) records/s, \(format(report.produce_mb_per_s)) MB/s (\(format(report.produce_seconds)) s)
                    ack latency        p50 \(format(report.ack_latency_ms.p50)) ms, p99 \(format(report.ack_latency_ms.p99)) ms, max \(format(report.ack_latency_ms.max)) ms (\(report.batch_records) records per produce, \(report.producers) producers)
                    consume            \(Int(report.consume_records_per_s)) records/s, \(format(report.consume_mb_per_s)) MB/s (\(format(report.consume_seconds)) s, \(report.consumers) members)
                    on disk            \(report.bytes_on_disk / 1_000_000) MB
                    """)
            }
        }
    }

    private func format(_ value: Double) -> String { String(format: "%.2f", value) }
}

struct KafkaProducerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-producer",
        abstract: "Producer throughput of the librdkafka client (idempotent, acks=all).",
        discussion: """
            Produces --records records of about --record-bytes bytes, keyed `order-N`, through the same broker abstraction the workers use: --producers concurrent tasks, each awaiting the delivery reports of --batch records per call. Without --brokers, a 3-broker librdkafka mock cluster runs in this process (what the issue's target is measured on). The cluster's end offsets are checked afterwards: every record acknowledged is there.
            """
    )

    @Option(help: "Records to produce.") var records = 1_000_000
    @Option(help: "Approximate size of each record's value, in bytes.") var recordBytes = 100
    @Option(help: "Partitions of the benchmark topic.") var partitions = 12
    @Option(help: "Concurrent producer tasks.") var producers = 4
    @Option(help: "Records per produce call.") var batch = 10_000
    @OptionGroup var kafka: KafkaOptions
    @Flag(help: "Print one JSON object with the figures.") var json = false

    func run() async throws {
        try await reportingFailures {
            var options = KafkaProducerBenchmark.Options()
            options.records = records
            options.recordBytes = recordBytes
            options.partitions = partitions
            options.producers = producers
            options.batchRecords = batch
            options.kafka = try kafka.configuration()
            options.connectTimeout = kafka.timeoutDuration
            let quiet = json
            let report = try await KafkaProducerBenchmark(options: options).run { if !quiet { writeStderr($0) } }
            if json {
                try printJSON(report)
            } else {
                print("""
                    records            \(report.records) x ~\(report.record_bytes) B over \(report.partitions) partitions (\(report.cluster))
                    produce            \(Int(report.records_per_s)) records/s, \(String(format: "%.2f", report.mb_per_s)) MB/s (\(String(format: "%.2f", report.seconds)) s)
                    ack latency        p50 \(String(format: "%.2f", report.ack_latency_ms.p50)) ms, p99 \(String(format: "%.2f", report.ack_latency_ms.p99)) ms per call of \(report.batch_records) records, \(report.producers) producers
                    """)
            }
        }
    }
}

struct JSONBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "json",
        abstract: "Order decoding: the saga's own JSON parser against Foundation's JSONSerialization and JSONDecoder.",
        discussion: "Decodes --orders synthetic order payloads (the load generator's, as they sit on `orders`) --rounds times with each decoder and prints the median round of each: orders/s, nanoseconds per order and MB/s. \"ours\" is what intake runs per record (parse, map to an order, check every rule); Foundation's decoders are shown parsing only and with the same mapping, so the comparison favours Foundation.")

    @Option(help: "Order payloads per round.") var orders = 20_000
    @Option(help: "Timed rounds per decoder (the median is reported).") var rounds = 5
    @Flag(help: "Print one JSON object with the figures.") var json = false

    func validate() throws {
        guard orders > 0, rounds > 0 else { throw ValidationError("--orders and --rounds must be positive") }
    }

    func run() async throws {
        try await reportingFailures {
            var options = JSONParserBenchmark.Options()
            options.orders = orders
            options.rounds = rounds
            let quiet = json
            let report = try JSONParserBenchmark(options: options).run { if !quiet { writeStderr($0) } }
            if json {
                try printJSON(report)
                return
            }
            print("\(report.orders) orders of ~\(report.mean_payload_bytes) B, median of \(report.rounds) rounds")
            for decoder in report.decoders {
                print("  \(decoder.name.padding(toLength: 46, withPad: " ", startingAt: 0)) \(Int(decoder.orders_per_s)) orders/s  \(Int(decoder.ns_per_order)) ns/order  \(String(format: "%.1f", decoder.mb_per_s)) MB/s")
            }
            print("ours is \(String(format: "%.1f", report.ours_speedup))x faster than Foundation's fastest full decode")
        }
    }
}
