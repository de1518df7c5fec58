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
///
/// One window is a few seconds, and on a shared machine two runs of the same thing a minute
/// apart differ by 15 % and more. So `rounds` pairs can be run, each pair on fresh
/// directories, the run with VIP orders first in odd rounds and second in even ones (so
/// neither side always comes first, on a fresher page cache); the figures are then the
/// medians of the rounds, and VIP latency is over every round's VIP orders.
public struct VIPLatencyBenchmark: Sendable {
    public struct Report: Codable, Sendable {
        public var schema_version = 1
        public var backlog: Int
        public var vip: Int
        public var rate: Double
        public var faults: String
        /// Over every round's VIP orders.
        public var vip_latency_ms: Latency
        public var run_s: Double
        /// Standard orders finished per second while the VIP orders came and went.
        public var standard_orders_per_s: Double
        /// The same backlog draining alone for as long.
        public var standard_orders_per_s_without_vip: Double
        /// `standard_orders_per_s` below the reference, as a share (0.1 = 10 % slower); with
        /// several rounds, the median of the rounds' shares.
        public var standard_slowdown: Double
        /// Standard orders not finished when the last VIP order was.
        public var backlog_left: Int
        /// Each pair's figures, in the order they ran (one entry without `--rounds`).
        public var rounds: [Round]
    }

    public struct Round: Codable, Sendable {
        /// Whether the run with VIP orders went before the reference.
        public var vip_run_first: Bool
        public var vip_latency_ms: Latency
        public var run_s: Double
        public var standard_orders_per_s: Double
        public var standard_orders_per_s_without_vip: Double
        public var standard_slowdown: Double
        public var backlog_left: Int
    }

    public struct Latency: Codable, Sendable {
        public var count: Int
        public var p50: Double
        public var p99: Double
        public var max: Double

        init(_ sorted: [Double]) {
            count = sorted.count
            p50 = SagaStatistics.percentile(sorted, 0.5)
            p99 = SagaStatistics.percentile(sorted, 0.99)
            max = sorted.last ?? 0
        }
    }

    public var backlog: Int
    public var vip: Int
    public var rate: Double
    public var faults: String
    public var configuration: SagaConfiguration
    public var rounds: Int

    public init(backlog: Int, vip: Int, rate: Double, faults: String, configuration: SagaConfiguration, rounds: Int = 1) {
        self.backlog = backlog
        self.vip = vip
        self.rate = rate
        self.faults = faults
        self.configuration = configuration
        self.rounds = max(1, rounds)
    }

    public func run(directory: String, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        var rounds: [Round] = []
        var latencies: [Double] = []
        for index in 0..<self.rounds {
            let vipFirst = index % 2 == 0
            let prefix = self.rounds > 1 ? "round \(index + 1)/\(self.rounds): " : ""
            let roundDirectory = directory + "/round-\(index + 1)"
            let (round, vipLatencies) = try await runRound(roundDirectory, vipFirst: vipFirst, logger: logger) { progress(prefix + $0) }
            rounds.append(round)
            latencies += vipLatencies
            // A round's directories are not needed once its figures are read.
            try? FileManager.default.removeItem(atPath: roundDirectory)
        }
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            let middle = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }
        return Report(
            backlog: backlog, vip: vip, rate: rate, faults: faults, vip_latency_ms: Latency(latencies.sorted()),
            run_s: median(rounds.map(\.run_s)), standard_orders_per_s: median(rounds.map(\.standard_orders_per_s)),
            standard_orders_per_s_without_vip: median(rounds.map(\.standard_orders_per_s_without_vip)),
            standard_slowdown: median(rounds.map(\.standard_slowdown)), backlog_left: Int(median(rounds.map { Double($0.backlog_left) })),
            rounds: rounds)
    }

    /// One pair: the backlog with VIP orders added, and the same backlog alone.
    func runRound(_ directory: String, vipFirst: Bool, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws -> (Round, [Double]) {
        let alone = directory + "/alone"
        let referenceFirst = vipFirst ? nil : try await runReference(alone, maxSeconds: nil, logger: logger, progress: progress)
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
        // A backlog that ran out before the last VIP order finished (a fast saga drains 50,000
        // orders in about the 5 s that 500 VIP orders at 100/s take) ends the window with its
        // last order: the VIP orders after it competed with nothing, and counting that time
        // would lower both rates alike and call the slowdown 0.
        let first = try Self.firstFinished(store, tag: backlogTag)
        let lastVIP = try store.stateReader.scalar("SELECT MAX(finished_at) FROM orders WHERE priority = 'vip'") ?? first
        let (finished, left) = try Self.backlogFigures(store, tag: backlogTag, count: backlog, until: lastVIP)
        let end = left == 0 ? try Self.lastFinished(store, tag: backlogTag) : lastVIP
        let window = max(1, end - first)
        let runSeconds = Double(window) / 1000
        let withRate = Double(finished) / runSeconds

        let reference: ReferenceRun
        if let referenceFirst {
            reference = referenceFirst
        } else {
            // Its clock starts at its own start: it must outlast the pipeline's fill before the
            // first backlog order finishes (seconds with a large backlog) as well as the window.
            let fill = Double(max(0, first - started)) / 1000
            reference = try await runReference(alone, maxSeconds: 2 * fill + runSeconds + 5, logger: logger, progress: progress)
        }
        let aloneRate = try reference.rate(over: window, seconds: runSeconds, backlog: backlog)
        let round = Round(
            vip_run_first: vipFirst, vip_latency_ms: Latency(vipLatencies), run_s: runSeconds, standard_orders_per_s: withRate,
            standard_orders_per_s_without_vip: aloneRate, standard_slowdown: aloneRate > 0 ? (aloneRate - withRate) / aloneRate : 0,
            backlog_left: left)
        return (round, vipLatencies)
    }

    /// The same backlog draining alone: run first, it drains the whole backlog (`maxSeconds`
    /// nil), which outlasts any window the run with VIP orders can have, since that one
    /// leaves backlog behind.
    struct ReferenceRun {
        let store: DispatcherStore
        let tag: String
        /// When it stopped (ms).
        let ended: Int64

        /// Its backlog orders finished per second over `window` ms from its first finish.
        func rate(over window: Int64, seconds: Double, backlog: Int) throws -> Double {
            let first = try VIPLatencyBenchmark.firstFinished(store, tag: tag)
            let (finished, left) = try VIPLatencyBenchmark.backlogFigures(store, tag: tag, count: backlog, until: first + window)
            // A reference stopped inside its window would count too few orders and call the
            // run with VIP orders faster than it was.
            if left > 0, ended < first + window {
                throw BenchmarkFailure(message: "the reference run stopped \(first + window - ended) ms before its window ended; its rate would be too low")
            }
            // Drained within the window: a rate over the whole window would be capped at the
            // backlog and call a slower run with VIP orders as fast. Its rate is then its whole
            // backlog over the time that took.
            if left == 0 {
                let last = try VIPLatencyBenchmark.lastFinished(store, tag: tag)
                return Double(finished) / (Double(max(1, last - first)) / 1000)
            }
            return Double(finished) / seconds
        }
    }

    func runReference(_ directory: String, maxSeconds: Double?, logger: Logger, progress: @escaping @Sendable (String) -> Void) async throws -> ReferenceRun {
        let tag = try await queueBacklog(directory, logger: logger)
        progress("reference: the same backlog alone")
        var reference = SagaRun.Options(dataDirectory: directory, configuration: configuration)
        reference.drain = true
        reference.maxSeconds = maxSeconds
        reference.faults = faults
        _ = try await SagaRun(options: reference, logger: logger).run(progress: { _ in }, notice: { _ in })
        return ReferenceRun(store: try DispatcherStore(location: directory, readOnly: true), tag: tag, ended: UnixClock.nowMillis())
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

    static func lastFinished(_ store: DispatcherStore, tag: String) throws -> Int64 {
        try store.stateReader.scalar("SELECT MAX(finished_at) FROM orders WHERE order_id >= ? AND order_id < ?", backlogIDs(tag)) ?? 0
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
