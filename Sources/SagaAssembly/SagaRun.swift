import Broker
import Dispatcher
import Foundation
import FulfillmentMetrics
import IOThreads
import KafkaWire
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import ServiceLifecycle
import StoreDatabase
import Synchronization

/// `fulfillment run`: the embedded broker, every worker and the dispatcher in one process.
/// With `orders`, generates that load and stops once every order is terminal; with `drain`,
/// processes what is queued and stops; otherwise serves until SIGINT/SIGTERM.
public struct SagaRun: Sendable {
    public struct Options: Sendable {
        public var dataDirectory: String
        /// The stores: a directory of SQLite files (default: the data directory) or a PostgreSQL URL.
        public var storeLocation: String?
        public var configuration: SagaConfiguration
        public var faults: String = "none"
        public var orders: Int?
        public var drain = false
        public var vipShare: Double = 0.05
        public var rate: Double?
        public var fsync: FsyncPolicy = .batch
        public var stockFile: [String: Int]?
        public var maxSeconds: Double?
        /// Also serve the data directory over the Kafka protocol here (host, port).
        public var listenHost: String?
        public var listenPort: Int = 9092
        public var listenLimits = ListenerLimits()
        /// TLS on that listener (`--tls-cert`), or nil for plain text.
        public var listenEncryption: (any ConnectionEncryption)?
        /// SASL on that listener (`--users`), or nil for anonymous clients.
        public var listenAuthenticator: (any SaslAuthenticator)?
        /// The operator side: `--http`, the admin token, the alert webhook.
        public var operatorOptions = OperatorOptions()

        public init(dataDirectory: String, configuration: SagaConfiguration) {
            self.dataDirectory = dataDirectory
            self.configuration = configuration
        }
    }

    /// The end-of-run summary (`run --json` prints exactly this object).
    public struct Summary: Codable, Sendable {
        /// docs/json.md: bumped when a key changes meaning or goes away.
        public var schema_version = 1
        public var orders: Int
        public var completed: Int
        public var compensated: Int
        public var rejected: Int
        public var manual_review: Int
        public var in_flight: Int
        /// Orders finished during this run per second, from the start of the run to the
        /// moment the last one finished (its `orders.completed` / `orders.compensated` event).
        /// A `--drain` over a data directory whose orders an earlier run finished counts only
        /// those this run finished: 0 when there were none.
        public var orders_per_s: Double
        /// From the start to the last order finishing (0 when none finished in this run).
        public var duration_s: Double
        /// From the start until the tracker had recorded every event (its history lags the saga).
        public var tracked_s: Double
        public var faults: String
        public var latency_ms: [String: SagaStatistics.Latency]
        public var retries: [String: Int]
        public var dead_letters: [String: Int]
        public var check: ConservationCheck.Report
    }

    public let options: Options
    let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs; returns the summary (nil when serving was ended by a signal without a load).
    /// `progress` gets the periodic progress line; `notice` the lines said once (where it
    /// listens, the admin token's file, alerts firing and resolving).
    public func run(progress: @escaping @Sendable (String) -> Void, notice: @escaping @Sendable (String) -> Void) async throws -> Summary? {
        var operatorOptions = options.operatorOptions
        if operatorOptions.generatedTokenFile == nil { operatorOptions.generatedTokenFile = options.dataDirectory + "/admin-token" }
        let operatorSide = OperatorAssembly(options: operatorOptions, logger: logger)
        var brokerConfiguration = EmbeddedBroker.Configuration(dataDirectory: options.dataDirectory)
        brokerConfiguration.fsync = options.fsync
        let broker = try EmbeddedBroker(configuration: brokerConfiguration, metrics: BrokerMetrics(handles: operatorSide.backend.handles), logger: logger)
        defer { broker.shutdown() }
        let configuration = options.configuration
        try await SagaTopology.create(configuration, on: broker, logger: logger)
        let faults = try configuration.faultProfile(named: options.faults)
        let storeLocation = options.storeLocation ?? options.dataDirectory
        let journals = try PoisonJournals(directory: options.dataDirectory + "/poison-journal", logger: logger)
        let readiness = operatorSide.readiness
        let node = try SagaNode(
            broker: broker, configuration: configuration, storeLocation: storeLocation, faults: faults, stockFile: options.stockFile,
            journals: journals, metrics: operatorSide.backend.handles, onConsumerReady: { readiness.set($0, true) }, logger: logger)
        let dispatcherStore = node.dispatcherStore!
        try await node.prepareStores()
        let generator = options.orders.map { count in
            var generator = LoadGenerator(count: count, vipShare: options.vipShare, rate: options.rate, skuCount: configuration.skuCount)
            generator.vipThreshold = configuration.vipAmountThreshold
            return generator
        }
        let scope = generator.map { OrderScope.run($0.runTag) } ?? .all
        var queued: Int64 = 0
        for topic in [configuration.topics.orders, configuration.topics.ordersPriority] where options.drain {
            queued += try await broker.describeTopic(topic).partitions.reduce(0) { $0 + $1.endOffset }
        }
        let drainTarget: Int64? = options.drain ? queued : nil

        var services = try node.services()
        if let host = options.listenHost {
            var wire = WireRequestHandler.Options()
            wire.inProcessTopics = Set(SagaTopology.specs(configuration).map(\.name))
            let listener = WireListener(
                broker: broker, host: host, port: options.listenPort, limits: options.listenLimits, encryption: options.listenEncryption, authenticator: options.listenAuthenticator, options: wire, metrics: WireMetrics(handles: operatorSide.backend.handles), logger: logger)
            services.append(WireListenerService(listener) { bound in notice("Kafka protocol\(listener.protection) on \(host):\(bound)") })
        }
        let adminToken = try operatorSide.adminToken(announce: notice)
        services += operatorSide.services(node: node, broker: broker, configuration: configuration, role: "run", adminToken: adminToken, notice: notice)
        let group = ServiceGroup(
            configuration: .init(services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let start = ContinuousClock.now
        let startMillis = UnixClock.nowMillis()
        let marks = RunMarks()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                defer { marks.servicesEnded.store(true, ordering: .releasing) }
                try await group.run()
            }
            if let generator {
                tasks.addTask {
                    try await generator.produce(to: broker, topics: configuration.topics) { marks.produced.store($0, ordering: .relaxed) }
                }
            }
            if generator != nil || drainTarget != nil {
                tasks.addTask {
                    var lastReport = ContinuousClock.now
                    var storeDown = false
                    // At least 250 ms between looks, and ten times what the last look took, so
                    // counting a very large run's orders never takes more than a tenth of a core.
                    var pause = Duration.milliseconds(250)
                    while true {
                        try await Task.sleep(for: pause)
                        // Stopped by SIGINT/SIGTERM before the orders finished: report what there is.
                        if marks.servicesEnded.load(ordering: .acquiring) { return }
                        let store = dispatcherStore
                        let counts: OrderScope.Counts
                        do {
                            let looked = ContinuousClock.now
                            counts = try await BlockingIO.run { try scope.counts(store) }
                            pause = max(.milliseconds(250), (ContinuousClock.now - looked) * 10)
                            if storeDown { notice("the dispatcher's store answers again") }
                            storeDown = false
                        } catch let error as StoreError where error.code == .unreachable {
                            // A restarting database server: the workers retry their batches; wait with them.
                            if !storeDown { notice("waiting for the dispatcher's store: \(error.message)") }
                            storeDown = true
                            continue
                        }
                        let elapsed = Self.seconds(ContinuousClock.now - start)
                        if ContinuousClock.now - lastReport >= .seconds(1) {
                            lastReport = ContinuousClock.now
                            let rate = elapsed > 0 ? Double(counts.finished) / elapsed : 0
                            let head = generator.map { "produced \(marks.produced.load(ordering: .relaxed))/\($0.count)" } ?? "queued \(drainTarget!)"
                            let total = Double(generator?.count ?? Int(drainTarget ?? 0))
                            let left = max(0, total - Double(counts.finished + counts.rejected))
                            let eta = rate > 0 && left > 0 ? " · ETA \(Self.clock(left / rate))" : ""
                            progress("[\(Self.clock(elapsed))] \(head) · accepted \(counts.accepted) · completed \(counts.completed) · compensated \(counts.compensated) · manual-review \(counts.manualReview) · rejected \(counts.rejected) · in flight \(counts.inFlight) · \(Int(rate)) orders/s\(eta)")
                        }
                        var done: Bool
                        if let generator {
                            done = counts.finished + counts.rejected >= generator.count
                        } else {
                            var intakeLag: Int64 = 0
                            for (group, topic) in SagaGroups.intakeLanes(configuration) {
                                intakeLag += try await broker.lag(group: group, topics: [topic]).filter { $0.topic == topic }.reduce(Int64(0)) { $0 + $1.lag }
                            }
                            // Intake commits only after storing and publishing, so no lag means every
                            // queued record is accepted (and tracked) or rejected.
                            done = intakeLag == 0 && counts.inFlight == 0
                        }
                        // Finish only once the tracker has recorded everything (its history feeds the summary).
                        if done { done = try await broker.lag(group: SagaTracker.group).allSatisfy { $0.lag == 0 } }
                        let timedOut = options.maxSeconds.map { elapsed > $0 } ?? false
                        if done || timedOut {
                            if timedOut { notice("stopping: --max-seconds \(options.maxSeconds!) reached with orders still in flight") }
                            marks.finishedAt.withLock { $0 = ContinuousClock.now }
                            await group.triggerGracefulShutdown()
                            return
                        }
                    }
                }
            }
            try await tasks.next()
            // The first to finish is either the service group (signal) or a helper: wait for the group.
            if marks.finishedAt.withLock({ $0 }) == nil && generator == nil && drainTarget == nil {
                tasks.cancelAll()
            }
            while let _ = try await tasks.next() {}
        }
        guard generator != nil || drainTarget != nil else { return nil }
        let end = marks.finishedAt.withLock { $0 } ?? ContinuousClock.now
        let tracked = Self.seconds(end - start)
        let finishedHere = try scope.finished(dispatcherStore, since: startMillis)
        let duration = finishedHere.last.map { max(0.001, Double($0 - startMillis) / 1000) } ?? 0
        let counts = try scope.counts(dispatcherStore)
        let check = try ConservationCheck(location: storeLocation).run()
        return Summary(
            orders: generator?.count ?? counts.accepted + counts.rejected, completed: counts.completed, compensated: counts.compensated,
            rejected: counts.rejected, manual_review: counts.manualReview, in_flight: counts.inFlight,
            orders_per_s: duration > 0 ? Double(finishedHere.count) / duration : 0, duration_s: duration, tracked_s: tracked, faults: options.faults,
            latency_ms: try scope.latency(dispatcherStore), retries: try scope.events(dispatcherStore, "retry_scheduled"),
            dead_letters: try scope.events(dispatcherStore, "dead_lettered"), check: check)
    }

    /// `m:ss` (or `h:mm:ss`) for progress lines.
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// What the run's helper tasks share: orders produced so far, and when the run was done.
private final class RunMarks: Sendable {
    let produced = Atomic<Int>(0)
    let servicesEnded = Atomic<Bool>(false)
    let finishedAt = Mutex<ContinuousClock.Instant?>(nil)
}

/// Which orders a run reports on: those it generated, or every order in the store.
enum OrderScope: Sendable {
    case run(String)
    case all

    struct Counts {
        let orders: DispatcherStore.OrderCounts
        let rejected: Int
        var accepted: Int { orders.tracked }
        var completed: Int { orders.completed }
        var compensated: Int { orders.compensated }
        var manualReview: Int { orders.parked }
        var inFlight: Int { orders.inFlight }
        var finished: Int { completed + compensated + manualReview }
    }

    /// The scope as a condition on an `order_id` column.
    var filter: (sql: String, values: [SQLValue]) {
        switch self {
        case .run(let tag): ("order_id >= ? AND order_id < ?", [.text("o-\(tag)-"), .text("o-\(tag)-\u{FFFF}")])
        case .all: ("1 = 1", [])
        }
    }

    /// Read every 250 ms while a run waits for its orders: from indexes only
    /// (`DispatcherStore.orderCounts`), never the orders themselves.
    func counts(_ store: DispatcherStore) throws -> Counts {
        // A rejection without an order_id is in no run's scope (NULL fails the range), only in `.all`.
        Counts(
            orders: try store.orderCounts(where: filter),
            rejected: Int(try store.intake.scalar("SELECT COUNT(*) FROM rejections WHERE \(filter.sql)", filter.values) ?? 0))
    }

    /// The scope's orders that finished at `since` (ms) or later, and when the last of them did
    /// (event time, ms; nil when none did).
    func finished(_ store: DispatcherStore, since: Int64) throws -> (count: Int, last: Int64?) {
        let rows = try store.stateReader.query(
            "SELECT COUNT(*), MAX(finished_at) FROM orders WHERE finished_at >= ? AND \(filter.sql)", [.integer(since)] + filter.values
        ) { (Int($0.int(0)), $0.isNull(1) ? nil : $0.int(1)) }
        return rows.first ?? (0, nil)
    }

    func latency(_ store: DispatcherStore) throws -> [String: SagaStatistics.Latency] {
        try SagaStatistics.latency(store, filter: filter)
    }

    func events(_ store: DispatcherStore, _ event: String) throws -> [String: Int] {
        var result: [String: Int] = [:]
        for step in SagaStep.allCases { result[step.rawValue] = 0 }
        let sql = "SELECT COALESCE(step, 'compensation'), COUNT(*) FROM \(store.everyHistoryTable) WHERE \(filter.sql) AND event = ? GROUP BY 1"
        for (step, n) in try store.connection.query(sql, filter.values + [.text(event)], { ($0.text(0), Int($0.int(1))) }) { result[step] = n }
        return result
    }
}
