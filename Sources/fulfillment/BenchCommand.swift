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
        subcommands: [SagaBench.self, VIPBench.self, BrokerBench.self, KafkaProducerBench.self, JSONBench.self]
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

struct SagaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "saga",
        abstract: "The whole saga on the embedded broker: N generated orders, durable; total time, orders/s, peak memory, latency per tier.",
        discussion: """
            Runs what `run --orders N` runs (fsync batch, SQLite synchronous=FULL) on a fresh temporary data directory (removed afterwards), with the configuration's policy, and reports the time until every order ended, finished orders per second, the process's peak resident memory (VmHWM), p50/p99 per tier and the conservation check. --store postgres://... puts the stores in PostgreSQL.
            """)
    @Option(help: "Orders to generate.") var orders = 100_000
    @Option(help: "Fault profile: none, default, chaos, or one from the config.") var faults = "none"
    @Option(help: "Where the stores live: postgres://... (default: SQLite files in the temporary data directory).") var store: String?
    @OptionGroup var settings: ConfigOptions
    @Flag(help: "Print one JSON object with the figures.") var json = false

    func validate() throws {
        if orders <= 0 { throw ValidationError("--orders must be positive") }
        if let store, !store.hasPrefix("postgres://") && !store.hasPrefix("postgresql://") { throw ValidationError("--store must be a postgres:// URL") }
    }

    func run() async throws {
        try await reportingFailures {
            let (directory, progress) = scratch("saga", json: json)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let report = try await SagaThroughputBenchmark(orders: orders, faults: faults, configuration: try settings.loadConfiguration(), storeLocation: store)
                .run(directory: directory, logger: quietLogger("bench-saga"), progress: { progress.show($0) })
            progress.finish()
            if json { return try printJSON(report) }
            print("orders        \(report.orders) (faults \(report.faults)): \(report.completed) completed, \(report.compensated) compensated")
            print(String(format: "total         %.1f s until every order ended; %.1f s until the history was recorded", report.total_s, report.tracked_s))
            print(String(format: "throughput    %.0f orders/s", report.orders_per_s))
            print(String(format: "peak memory   %.0f MiB resident", report.peak_rss_mib))
            for (tier, l) in report.latency_ms.sorted(by: { $0.key < $1.key }) where l.count > 0 {
                print(String(format: "latency %@ p50 %.0f ms, p99 %.0f ms (%d orders)", tier.padding(toLength: 9, withPad: " ", startingAt: 0), l.p50, l.p99, l.count))
            }
            print("check         \(report.check_ok ? "ok" : "FAILED")")
            if !report.check_ok { throw ExitCode(1) }
        }
    }
}

struct VIPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vip",
        abstract: "VIP orders added at a rate while a standard backlog drains: their latency, and what they cost the backlog.",
        discussion: """
            Queues --backlog standard orders, then runs the saga adding --vip VIP orders at --rate per second while the backlog drains. Reports the VIP orders' latency (produced to completed: p50, p99, max), the standard orders finished per second meanwhile, the same backlog's rate draining alone for as long (a second run on a fresh directory), and the backlog left when the last VIP order finished. A backlog that runs out first ends the window with its last order, and a reference run that drains it within the window counts its whole backlog over the time that took. Fresh temporary data directories, removed afterwards.

            A window lasts a few seconds, and two runs of the same thing on a shared machine differ by 15 % and more. --rounds N runs N such pairs, the run with VIP orders first in odd rounds and second in even ones, and reports the medians of the rounds (VIP latency over every round's orders), with each round's figures.
            """)
    @Option(help: "Standard orders queued before the VIP orders come.") var backlog = 50_000
    @Option(help: "VIP orders to add.") var vip = 500
    @Option(help: "VIP orders per second.") var rate = 100.0
    @Option(help: "Fault profile: none, default, chaos, or one from the config.") var faults = "none"
    @Option(help: "Pairs of runs (with VIP orders, and the backlog alone); the figures are their medians.") var rounds = 1
    @OptionGroup var settings: ConfigOptions
    @Flag(help: "Print one JSON object with the figures.") var json = false

    func validate() throws {
        if backlog < 0 || vip <= 0 || rate <= 0 { throw ValidationError("--backlog must not be negative; --vip and --rate must be positive") }
        if rounds < 1 || rounds > 100 { throw ValidationError("--rounds must be 1 to 100") }
    }

    func run() async throws {
        try await reportingFailures {
            let (directory, progress) = scratch("vip", json: json)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let report = try await VIPLatencyBenchmark(backlog: backlog, vip: vip, rate: rate, faults: faults, configuration: try settings.loadConfiguration(), rounds: rounds)
                .run(directory: directory, logger: quietLogger("bench-vip"), progress: { progress.show($0) })
            progress.finish()
            if json { return try printJSON(report) }
            if report.rounds.count > 1 {
                for (i, round) in report.rounds.enumerated() {
                    print(String(format: "round %d (%@ first): VIP p99 %.0f ms; standard %.0f orders/s, alone %.0f (%.1f %% slower); backlog left %d",
                                 i + 1, round.vip_run_first ? "with VIP" : "alone", round.vip_latency_ms.p99, round.standard_orders_per_s,
                                 round.standard_orders_per_s_without_vip, round.standard_slowdown * 100, round.backlog_left))
                }
                print("medians of \(report.rounds.count) rounds:")
            }
            let l = report.vip_latency_ms
            print("VIP latency   p50 \(Int(l.p50)) ms, p99 \(Int(l.p99)) ms, max \(Int(l.max)) ms (\(l.count) orders at \(report.rate)/s over a backlog of \(report.backlog))")
            print(String(format: "standard      %.0f orders/s meanwhile, %.0f orders/s alone (%.1f %% slower)", report.standard_orders_per_s, report.standard_orders_per_s_without_vip, report.standard_slowdown * 100))
            if report.backlog_left == 0 {
                print("backlog left  0: it ran out before the last VIP order finished; the window (\(String(format: "%.1f", report.run_s)) s) ends with its last order. A larger --backlog measures the whole VIP window")
            } else {
                print("backlog left  \(report.backlog_left) when the last VIP order finished (after \(String(format: "%.1f", report.run_s)) s)")
            }
        }
    }
}

/// A fresh temporary data directory for `bench NAME` (the caller removes it) and its progress
/// line, shown on a terminal unless the figures go out as JSON.
private func scratch(_ name: String, json: Bool) -> (directory: String, progress: ProgressLine) {
    let directory = NSTemporaryDirectory() + "fulfillment-bench-\(name)-\(ProcessInfo.processInfo.processIdentifier)"
    try? FileManager.default.removeItem(atPath: directory)
    return (directory, ProgressLine(enabled: isatty(STDERR_FILENO) != 0 && !json))
}
