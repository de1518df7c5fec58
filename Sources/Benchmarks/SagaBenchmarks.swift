import Broker
import Dispatcher
import Foundation
import Logging
import Messaging
import SagaAssembly
import SagaDomain
import StoreDatabase

/// `fulfillment bench saga`: the whole saga on the embedded broker (durable: fsync batch,
/// SQLite synchronous=FULL), N generated orders, timed to the last order's end; with the
/// process's peak resident memory.
public struct SagaThroughputBenchmark: Sendable {
    public struct Report: Codable, Sendable {
        public var schema_version = 1
        public var orders: Int
        public var faults: String
        public var completed: Int
        public var compensated: Int
        public var total_s: Double
        public var orders_per_s: Double
        public var tracked_s: Double
        public var peak_rss_mib: Double
        public var latency_ms: [String: SagaStatistics.Latency]
        public var check_ok: Bool
    }

    public var orders: Int
    public var faults: String
    public var configuration: SagaConfiguration
    public var storeLocation: String?

    public init(orders: Int, faults: String, configuration: SagaConfiguration, storeLocation: String? = nil) {
        self.orders = orders
        self.faults = faults
        self.configuration = configuration
        self.storeLocation = storeLocation
    }

    public func run(directory: String, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        var options = SagaRun.Options(dataDirectory: directory, configuration: configuration)
        options.orders = orders
        options.faults = faults
        options.storeLocation = storeLocation
        let start = ContinuousClock.now
        guard let summary = try await SagaRun(options: options, logger: logger).run(progress: progress, notice: progress) else {
            throw BenchmarkFailure(message: "the run was stopped before its orders finished")
        }
        let elapsed = ContinuousClock.now - start
        return Report(
            orders: orders, faults: faults, completed: summary.completed, compensated: summary.compensated,
            total_s: Self.seconds(elapsed), orders_per_s: summary.orders_per_s, tracked_s: summary.tracked_s,
            peak_rss_mib: Self.peakResidentMiB(), latency_ms: summary.latency_ms, check_ok: summary.check.ok)
    }

    /// The process's peak resident set (VmHWM), in MiB.
    public static func peakResidentMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kib / 1024
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// `fulfillment bench vip`: VIP orders added at a rate while a standard backlog drains, on
/// the embedded broker. Their latency (produced → completed) should not depend on the
/// backlog; the standard orders' throughput meanwhile is compared with the same backlog
/// draining alone for as long.
public struct VIPLatencyBenchmark: Sendable {
    public struct Report: Codable, Sendable {
        public var schema_version = 1
        public var backlog: Int
        public var vip: Int
        public var rate: Double
        public var faults: String
        public var vip_latency_ms: Latency
        public var run_s: Double
        /// Standard orders finished per second while the VIP orders came and went.
        public var standard_orders_per_s: Double
        /// The same backlog draining alone for as long.
        public var standard_orders_per_s_without_vip: Double
        /// `standard_orders_per_s` below the reference, as a share (0.1 = 10 % slower).
        public var standard_slowdown: Double
        /// Standard orders not finished when the last VIP order was.
        public var backlog_left: Int
    }

    public struct Latency: Codable, Sendable {
        public var count: Int
        public var p50: Double
        public var p99: Double
        public var max: Double
    }

    public var backlog: Int
    public var vip: Int
    public var rate: Double
    public var faults: String
    public var configuration: SagaConfiguration

    public init(backlog: Int, vip: Int, rate: Double, faults: String, configuration: SagaConfiguration) {
        self.backlog = backlog
        self.vip = vip
        self.rate = rate
        self.faults = faults
        self.configuration = configuration
    }

    public func run(directory: String, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        // With VIP orders: the backlog queued first, then VIP orders at the rate.
        let withVIP = directory + "/with-vip"
        let backlogTag = try await queueBacklog(withVIP, logger: logger)
        progress("queued \(backlog) standard orders; adding \(vip) VIP orders at \(rate)/s")
        var options = SagaRun.Options(dataDirectory: withVIP, configuration: configuration)
        options.orders = vip
        options.vipShare = 1
        options.rate = rate
        options.faults = faults
        let started = UnixClock.nowMillis()
        guard try await SagaRun(options: options, logger: logger).run(progress: progress, notice: progress) != nil else {
            throw BenchmarkFailure(message: "the run was stopped before its VIP orders finished")
        }
        let store = try DispatcherStore(location: withVIP, readOnly: true)
        let vipLatencies = try store.stateReader.query(
            "SELECT finished_at - created_at FROM orders WHERE priority = 'vip' AND state = 'completed' ORDER BY 1") { Double($0.int(0)) }
        // The window: from the first backlog order finishing to the last VIP order finishing.
        // Not from the first order of any kind: a VIP order finishes while the backlog's first
        // batches are still filling the pipeline, and counting that fill against the run
        // with VIP orders, but not against the run without them, would call it a slowdown.
        let first = try Self.firstFinished(store, tag: backlogTag)
        let lastVIP = try store.stateReader.scalar("SELECT MAX(finished_at) FROM orders WHERE priority = 'vip'") ?? first
        let window = max(1, lastVIP - first)
        let runSeconds = Double(window) / 1000
        let (finished, left) = try Self.backlogFigures(store, tag: backlogTag, count: backlog, until: lastVIP)
        let withRate = Double(finished) / runSeconds

        // Without: the same backlog draining alone for as long.
        let alone = directory + "/alone"
        let aloneTag = try await queueBacklog(alone, logger: logger)
        progress("reference: the same backlog alone for \(String(format: "%.1f", runSeconds)) s")
        var reference = SagaRun.Options(dataDirectory: alone, configuration: configuration)
        reference.drain = true
        // Its clock starts at its own start: it must outlast the pipeline's fill before the
        // first backlog order finishes (seconds with a large backlog) as well as the window.
        let fill = Double(max(0, first - started)) / 1000
        reference.maxSeconds = 2 * fill + runSeconds + 5
        reference.faults = faults
        _ = try await SagaRun(options: reference, logger: logger).run(progress: { _ in }, notice: { _ in })
        let referenceEnded = UnixClock.nowMillis()
        let aloneStore = try DispatcherStore(location: alone, readOnly: true)
        let firstAlone = try Self.firstFinished(aloneStore, tag: aloneTag)
        let (finishedAlone, leftAlone) = try Self.backlogFigures(aloneStore, tag: aloneTag, count: backlog, until: firstAlone + window)
        // A reference stopped inside its window would count too few orders and call the run
        // with VIP orders faster than it was.
        if leftAlone > 0, referenceEnded < firstAlone + window {
            throw BenchmarkFailure(message: "the reference run stopped \(firstAlone + window - referenceEnded) ms before its window ended; its rate would be too low")
        }
        let aloneRate = Double(finishedAlone) / runSeconds
        return Report(
            backlog: backlog, vip: vip, rate: rate, faults: faults,
            vip_latency_ms: Latency(
                count: vipLatencies.count, p50: SagaStatistics.percentile(vipLatencies, 0.5), p99: SagaStatistics.percentile(vipLatencies, 0.99),
                max: vipLatencies.last ?? 0),
            run_s: runSeconds, standard_orders_per_s: withRate, standard_orders_per_s_without_vip: aloneRate,
            standard_slowdown: aloneRate > 0 ? (aloneRate - withRate) / aloneRate : 0, backlog_left: left)
    }

    /// Produces the standard backlog into a fresh data directory; returns its run tag.
    func queueBacklog(_ directory: String, logger: Logger) async throws -> String {
        let broker = try EmbeddedBroker(dataDirectory: directory, logger: logger)
        defer { broker.shutdown() }
        try await SagaTopology.create(configuration, on: broker, logger: logger)
        let generator = LoadGenerator(count: backlog, vipShare: 0, rate: nil, skuCount: configuration.skuCount)
        try await generator.produce(to: broker, topics: configuration.topics)
        return generator.runTag
    }

    /// The order ids of a backlog queued under `tag`, as bounds for `order_id >= ? AND order_id < ?`.
    static func backlogIDs(_ tag: String) -> [SQLValue] { [.text("o-\(tag)-"), .text("o-\(tag)-\u{FFFF}")] }

    /// When the first backlog order finished (ms).
    static func firstFinished(_ store: DispatcherStore, tag: String) throws -> Int64 {
        try store.stateReader.scalar("SELECT MIN(finished_at) FROM orders WHERE order_id >= ? AND order_id < ?", backlogIDs(tag)) ?? 0
    }

    /// Backlog orders finished by `until` (ms), and those not.
    static func backlogFigures(_ store: DispatcherStore, tag: String, count: Int, until: Int64) throws -> (finished: Int, left: Int) {
        let finished = Int(try store.stateReader.scalar(
            "SELECT COUNT(*) FROM orders WHERE order_id >= ? AND order_id < ? AND state IN ('completed', 'compensated', 'manual_review') AND finished_at <= ?",
            backlogIDs(tag) + [.integer(until)]) ?? 0)
        return (finished, count - finished)
    }
}

public struct BenchmarkFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
