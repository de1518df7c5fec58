import CoreMetrics
import IOThreads
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import ServiceLifecycle
import StoreDatabase

/// Finds orders stuck past their step's budget (every attempt running to its timeout plus
/// every retry delay, plus a crashed worker's failover time and a grace) and gets them moving: first by re-publishing the step's
/// request with the same idempotency key (so a recovered order is never charged twice), then,
/// if that did not help, by compensating. A compensation stuck past its budget is
/// re-requested, and parked in manual review after that. Nothing stays in flight forever.
public struct Watchdog: Service {
    let broker: any MessageBroker
    let store: DispatcherStore
    let configuration: SagaConfiguration
    let logger: Logger
    /// Orders acted on, and orders parked with an alert.
    let recovered: Counter
    let alerts: Counter

    public init(broker: any MessageBroker, store: DispatcherStore, configuration: SagaConfiguration, recovered: Counter, alerts: Counter, logger: Logger) {
        self.broker = broker
        self.store = store
        self.configuration = configuration
        self.recovered = recovered
        self.alerts = alerts
        self.logger = logger
    }

    public func run() async throws {
        var tracker = TrackerWatch(runningSince: UnixClock.nowMillis())
        // Every acceptance is looked at once; at start, all of them (paged: `reconcileAccepted`).
        var acceptances = AcceptanceCheck()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // A stop must not wait out the interval.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(Int64(configuration.watchdogIntervalSeconds * 1000))) }
            if Task.isShuttingDownGracefully || Task.isCancelled { break }
            do {
                let backlog = try await trackerBacklog()
                switch tracker.observe(backlog, now: UnixClock.nowMillis()) {
                case .startedWaiting(let reason):
                    logger.notice("the watchdog waits for the tracker \(reason)", metadata: ["saga.backlog": "\(backlog.records)"])
                    continue
                case .waiting:
                    continue
                case .current:
                    break
                }
                try await sweep(now: UnixClock.nowMillis(), runningSince: tracker.runningSince)
                try await reconcileAccepted(&acceptances, now: UnixClock.nowMillis())
            } catch {
                logger.error("watchdog sweep failed", metadata: ["error.message": "\(error)"])
            }
        }
    }

    /// Events the tracker has not recorded yet. Orders' states are only as fresh as the
    /// tracker: while it catches up (after the dispatcher was down, or filling a history
    /// again from the log), an order whose later events wait in that backlog only looks
    /// stuck, and recovering it could compensate an order that completed. Counted from the
    /// store's offsets, since the tracker reads from them, not from its group's commits, on
    /// every partition of its topics (a partition it never committed on counts too); a
    /// partition without a row is read from its start (`SagaTracker.startOffsets`).
    func trackerBacklog() async throws -> TrackerBacklog {
        let lags = try await broker.lag(group: SagaTracker.group, topics: SagaTracker.topics(configuration))
        let store = self.store
        let recorded = try await BlockingIO.run { try store.trackerOffsets() }
        let delayed = Set(SagaTracker.retryTopics(configuration))
        var backlog = TrackerBacklog(recorded: recorded)
        for lag in lags {
            let unrecorded = max(0, lag.endOffset - max(recorded[TopicPartition(lag.topic, lag.partition)] ?? 0, lag.beginOffset))
            backlog.records += unrecorded
            if !delayed.contains(lag.topic) { backlog.readable += unrecorded }
        }
        return backlog
    }

    /// Orders the intake accepted that the tracker never saw start: their payment request never
    /// reached the log (a cluster that acknowledged a record and lost it), or the tracker
    /// skipped it. The sweep cannot see them, since it walks the tracker's orders, so the
    /// saga's promise that every order ends would not hold for them. Each acceptance older
    /// than the payment step's budget is looked at once, in acceptance order. One without a
    /// tracker row is only a suspect while the intake may still publish its request (it died
    /// before it did, and reads the order again) or the tracker may still be behind (after a
    /// restart it catches up for a while): it is decided once the intake has committed past
    /// it and the tracker has recorded the payment topics up to where they ended then
    /// (`AcceptanceCheck`). Still without a row then, it gets its request published again,
    /// with the intake's idempotency key. Returns how many.
    @discardableResult
    func reconcileAccepted(_ check: inout AcceptanceCheck, now: Int64) async throws -> Int {
        let upTo = now - budgetMilliseconds(.payment)
        let store = self.store
        if check.checkedUpTo == 0 { check.checkedUpTo = now - Self.acceptanceHorizonMilliseconds }
        for _ in 0..<Self.acceptancePagesPerSweep {
            let from = check.checkedUpTo
            let (candidates, last) = try await BlockingIO.run { try store.acceptedNeverStarted(after: from, upTo: upTo, limit: Self.acceptancePage) }
            guard let last else { break }
            check.suspect(candidates)
            check.checkedUpTo = last
        }
        guard check.hasSuspects else { return 0 }
        if check.awaitsIntake {
            // The commits first: a request the intake published again before committing past
            // its order is then within the ends read after.
            let unread = try await intakeUnread()
            check.intakePassed(unread, paymentTopicsEnds: try await paymentTopicsEnds())
        }
        let due = check.due(recorded: try await BlockingIO.run { try store.trackerOffsets() })
        guard !due.isEmpty else { return 0 }
        do {
            let started = try await BlockingIO.run { try store.startedOrders(due.map(\.id)) }
            let lost = due.filter { !started.contains($0.id) }
            guard !lost.isEmpty else { return 0 }
            let orders = try await BlockingIO.run { try store.submittedOrders(lost.map(\.id)) }
            let messages = SagaMessages(topics: configuration.topics)
            // The intake stored only orders it parsed, and stored them canonical.
            let requests = orders.compactMap { stored -> ProducerRecord? in
                guard let order = try? Order.decode(stored.body) else { return nil }
                logger.warning("an accepted order never started: re-publishing its payment request", metadata: ["order.id": "\(stored.id)"])
                // Where the intake read it: the tracker records the order's acceptance from it.
                let source = stored.source.map { [RecordHeader(SagaHeader.sourcePosition, $0)] } ?? []
                return OrderIntake.paymentRequest(
                    order, canonical: stored.body, vipThreshold: configuration.vipAmountThreshold, createdAt: stored.createdAt, messages: messages,
                    extra: [RecordHeader(SagaHeader.recoveredBy, "watchdog")] + source)
            }
            guard !requests.isEmpty else { return 0 }
            _ = try await broker.produce(requests)
            recovered.increment(by: requests.count)
            return requests.count
        } catch {
            // Decided next time, not forgotten.
            check.suspectAgain(due)
            throw error
        }
    }

    /// What the intake's groups have still to read of the topics they read (`orders` and the
    /// priority intake), per partition: from their commit (or the start) to the end.
    func intakeUnread() async throws -> [TopicPartition: Range<Int64>] {
        var unread: [TopicPartition: Range<Int64>] = [:]
        for (group, topic) in SagaGroups.intakeLanes(configuration) {
            for lag in try await broker.lag(group: group, topics: [topic]) where lag.topic == topic {
                let next = min(max(lag.committedOffset ?? lag.beginOffset, lag.beginOffset), lag.endOffset)
                unread[TopicPartition(lag.topic, lag.partition)] = next..<lag.endOffset
            }
        }
        return unread
    }

    /// Where each partition of the topics of an order's first event (the intake's payment
    /// requests) ends now, read from the topics themselves. Not from the tracker group's lag:
    /// on a Kafka cluster that lists only the partitions the group has committed to (the
    /// tracker reads from its store's offsets), and a suspect that waited for those alone
    /// was decided before the tracker read its order's request from another one. The chaos
    /// run on the mock cluster with seed 525400474 requested 250 to 712 orders again so.
    func paymentTopicsEnds() async throws -> [TopicPartition: Int64] {
        let t = configuration.topics
        var ends: [TopicPartition: Int64] = [:]
        for topic in [t.requested(.payment), t.requested(.payment, priority: .vip)] {
            let partitions: [PartitionDescription]
            do {
                partitions = try await broker.describeTopic(topic).partitions
            } catch let error as BrokerError where error.code == .unknownTopic {
                continue  // no request can be waiting there
            }
            for p in partitions { ends[TopicPartition(topic, p.partition)] = p.endOffset }
        }
        return ends
    }

    /// How far back a watchdog that just started looks: a day. Older acceptances were looked
    /// at by the processes before it, and a tracker store filled again from the log may lack
    /// orders whose events the log no longer holds: they must not all be requested again.
    static let acceptanceHorizonMilliseconds: Int64 = 24 * 3_600_000

    /// Acceptances looked at per statement, and statements per sweep: a first sweep over a
    /// large store walks it in steps, without holding up the sweeps.
    static let acceptancePage = 10_000
    static let acceptancePagesPerSweep = 10

    /// Above this backlog the watchdog waits: the tracker's batches are full, so it is
    /// catching up, not keeping up.
    static let trackerBacklogLimit = Int64(SagaTracker.batchSize)

    /// The longest an order may sit in `state` before it counts as stuck, in milliseconds.
    public func budgetMilliseconds(_ state: OrderState) -> Int64 { Self.budgetMilliseconds(state, configuration) }

    /// The same, for any configuration (the stuck list of the admin API uses it): the step's
    /// worst case, plus the time a crashed worker's partitions take to reach a live one (its
    /// group waits a session timeout for it, and the whole group pauses while it rebalances),
    /// plus the grace. Without the failover time, a worker killed on a cluster stopped its
    /// step for longer than a short budget, and the watchdog compensated every order queued
    /// there, though nothing was lost (the chaos run on Kafka parked 800 of 1,000 orders
    /// whose compensations then timed out in a burst).
    public static func budgetMilliseconds(_ state: OrderState, _ configuration: SagaConfiguration) -> Int64 {
        let seconds: Double
        if let step = state.step {
            seconds = configuration[step].budgetSeconds
        } else {
            seconds = configuration.compensation.budgetSeconds
        }
        return Int64((seconds + memberFailoverSeconds + configuration.watchdogGraceSeconds) * 1000)
    }

    /// A step's consumers' session timeout: how long a dead member keeps its partitions.
    public static let memberFailoverSeconds = Double(ConsumerConfiguration().sessionTimeout.components.seconds)

    /// One pass: acts on every stuck order; returns how many it acted on.
    @discardableResult
    public func sweep(now: Int64, runningSince: Int64 = 0) async throws -> Int {
        let shortest = OrderState.allCases.filter { !$0.isTerminal }.map(budgetMilliseconds).min() ?? 0
        let store = self.store
        let candidates = try await BlockingIO.run { try store.connection.query(
            "SELECT o.order_id, o.state, o.body, o.priority, o.recoveries, o.updated_at \(DispatcherStore.openJoin) WHERE o.state NOT IN \(OrderState.terminalSQL) AND o.updated_at < ? LIMIT 10000",
            [.integer(now - shortest)]
        ) { row in
            (id: row.text(0), state: OrderState(rawValue: row.text(1)) ?? .accepted, body: row.blob(2), priority: Priority(rawValue: row.text(3)) ?? .standard,
             recoveries: Int(row.int(4)), updatedAt: row.int(5))
        } }
        var stuck = candidates.filter { now - max($0.updatedAt, runningSince) > budgetMilliseconds($0.state) }
        // Bodies the tracker left with the intake (`DispatcherStore.bodies`).
        let bodies = try await BlockingIO.run { [stuck] in try store.bodies(stuck.map { ($0.id, $0.body) }) }
        for i in stuck.indices where stuck[i].body.isEmpty { stuck[i].body = bodies[stuck[i].id] ?? [] }
        let messages = SagaMessages(topics: configuration.topics)
        var outgoing: [ProducerRecord] = []
        var updates: [(String, Int)] = []
        var parked: [(String, String)] = []
        for order in stuck {
            let marker = [RecordHeader(SagaHeader.recoveredBy, "watchdog")]
            if let step = order.state.step {
                if order.recoveries == 0 {
                    var request = messages.request(step, orderID: order.id, orderJSON: order.body, priority: order.priority)
                    request.headers += marker
                    outgoing.append(request)
                    logger.warning("stuck order: re-publishing its request", metadata: ["order.id": "\(order.id)", "saga.step": "\(step.rawValue)"])
                } else {
                    // Stuck twice is a timeout of the step: its policy says whether that compensates.
                    switch configuration.outcome(ofFailureAt: step, errorClass: StepFailure.timeoutClass) {
                    case .compensate(let undo):
                        outgoing.append(messages.compensation(
                            orderID: order.id, orderJSON: order.body, priority: order.priority,
                            reason: "stuck in \(step.rawValue) past its budget",
                            extra: marker + CompensationDriver.undoHeader(undo, configured: configuration[step].undo != nil)))
                        logger.warning("stuck order: compensating", metadata: ["order.id": "\(order.id)", "saga.step": "\(step.rawValue)"])
                    case .park(let reason):
                        var headers = SagaMessages.headers(orderID: order.id, key: IdempotencyKey.step(order.id, step), step: step.rawValue, attempt: 1, priority: order.priority)
                        headers.append(RecordHeader(SagaHeader.reason, "stuck in \(step.rawValue) past its budget; \(reason)"))
                        outgoing.append(ProducerRecord(topic: configuration.topics.manualReview, key: Array(order.id.utf8), value: order.body, headers: headers + marker))
                        logger.error("order parked for manual review", metadata: ["order.id": "\(order.id)", "error.message": "\(reason)"])
                        parked.append((order.id, "stuck in \(step.rawValue) past its budget; \(reason)"))
                    }
                }
            } else if order.recoveries < 3 {
                outgoing.append(messages.compensation(
                    orderID: order.id, orderJSON: order.body, priority: order.priority, reason: "compensation stuck past its budget", extra: marker))
            } else {
                var headers = SagaMessages.headers(orderID: order.id, key: IdempotencyKey.compensation(order.id), step: "compensation", attempt: 1, priority: order.priority)
                headers.append(RecordHeader(SagaHeader.reason, "compensation stuck past its budget three times"))
                outgoing.append(ProducerRecord(topic: configuration.topics.manualReview, key: Array(order.id.utf8), value: order.body, headers: headers + marker))
                logger.error("order parked for manual review", metadata: ["order.id": "\(order.id)", "error.message": "compensation stuck"])
                parked.append((order.id, "compensation stuck past its budget three times"))
            }
            updates.append((order.id, order.recoveries + 1))
        }
        guard !outgoing.isEmpty else { return 0 }
        _ = try await broker.produce(outgoing)
        recovered.increment(by: updates.count)
        let done = updates
        let alerted = parked
        try await BlockingIO.run { try store.connection.transaction { db in
            for (id, recoveries) in done {
                try db.run("UPDATE orders SET recoveries = ?, updated_at = ? WHERE order_id = ?", [.integer(Int64(recoveries)), .integer(now), .text(id)])
            }
            // Every parked order raises an alert, as the compensation driver's do.
            for (id, message) in alerted {
                try db.run("INSERT INTO alerts VALUES (?, ?, 'manual_review', ?)", [.integer(now), .text(id), .text(message)])
            }
        } }
        if !alerted.isEmpty { alerts.increment(by: alerted.count) }
        return updates.count
    }
}

/// The watchdog's walk over the intake's acceptances (`Watchdog.reconcileAccepted`), as a
/// plain state machine: how far it has looked, and the orders without a tracker row, each
/// waiting first for the intake to commit past where it read the order, then for the tracker
/// to pass where the payment topics ended at that commit.
///
/// The intake stores an acceptance before it publishes the payment request and commits
/// after. One that died between the two reads the order again, once its partitions move,
/// and publishes the request itself: until its commit passes the order, a missing request
/// is not lost. (A chaos run whose dispatcher died early requested 482 to 736 of 1,000
/// orders again at once, beside the intake's own replay.)
public struct AcceptanceCheck: Sendable {
    public struct Suspect: Sendable {
        public var id: String
        /// Where the intake read the order, until its commit has passed it; `nil` once it
        /// has, or for an acceptance an older version stored without it.
        var source: RecordCoordinates?
        /// Where the payment topics ended once the intake had passed the order: the tracker
        /// has seen any request published for it when it has recorded them up to there.
        var waitFor: [TopicPartition: Int64]?
    }

    /// The acceptance time looked at up to; 0: not started (the walk then starts a horizon back).
    public var checkedUpTo: Int64 = 0
    private(set) var suspects: [Suspect] = []

    public init() {}

    var hasSuspects: Bool { !suspects.isEmpty }

    /// Whether some suspect waits to be given the payment topics' ends (`intakePassed`).
    var awaitsIntake: Bool { suspects.contains { $0.waitFor == nil } }

    mutating func suspect(_ orders: [(id: String, source: String?)]) {
        suspects += orders.map { Suspect(id: $0.id, source: $0.source.flatMap(RecordCoordinates.init)) }
    }

    /// Suspects the intake will not read again (`unread`: per partition of its topics, the
    /// offsets from its commit, or the partition's start without one, to the end) wait from
    /// now on for the tracker to pass `paymentTopicsEnds`, read after those commits. An
    /// order's record no longer in its partition (retention, a topic made again) will not
    /// be read again either.
    mutating func intakePassed(_ unread: [TopicPartition: Range<Int64>], paymentTopicsEnds: [TopicPartition: Int64]) {
        for i in suspects.indices where suspects[i].waitFor == nil {
            if let source = suspects[i].source, unread[source.tp]?.contains(source.offset) == true { continue }
            suspects[i].source = nil
            suspects[i].waitFor = paymentTopicsEnds
        }
    }

    /// Suspects taken by `due` whose decision failed (a broker or store error): due again next time.
    mutating func suspectAgain(_ taken: [Suspect]) {
        suspects = taken + suspects
    }

    /// The suspects the tracker has caught up for (`recorded`: its store's offsets; a
    /// partition without one is at 0), taken out of the list.
    mutating func due(recorded: [TopicPartition: Int64]) -> [Suspect] {
        var due: [Suspect] = []
        suspects.removeAll { suspect in
            guard let waitFor = suspect.waitFor else { return false }
            let caughtUp = waitFor.allSatisfy { (recorded[$0.key] ?? 0) >= $0.value }
            if caughtUp { due.append(suspect) }
            return caughtUp
        }
        return due
    }
}

/// What the tracker has not recorded yet (`Watchdog.trackerBacklog`).
struct TrackerBacklog: Equatable {
    /// Every record not recorded yet.
    var records: Int64 = 0
    /// Those on topics without a delivery delay: the tracker can read them now (a retry
    /// tier's record waits for its delay, minutes in some policies, and is not a sign of a
    /// stalled tracker).
    var readable: Int64 = 0
    /// The tracker's store's offsets.
    var recorded: [TopicPartition: Int64]
}

/// Whether the tracker's view of the orders is current enough for the watchdog to judge them,
/// as a plain state machine. Orders' states are only as fresh as the tracker: an order whose
/// later events wait unrecorded only looks stuck, and recovering it twice compensates it.
///
/// - **Catching up**: more than a batch of records unrecorded.
/// - **Stalled**: records it could read wait and it recorded nothing since the last look. A
///   dispatcher restarted on a Kafka cluster has its groups' partitions only once the dead
///   member's session times out, while the workers go on; in chaos runs the watchdog then
///   re-published 114 to 215 requests of orders that had moved on.
///
/// Time spent waiting does not count against an order, like time the saga was not running:
/// once the tracker is current, every order gets a whole budget of running time again.
struct TrackerWatch {
    enum Verdict: Equatable {
        case current
        case startedWaiting(String)
        case waiting
    }

    /// Since when the saga has run with a current tracker (`Watchdog.sweep`).
    private(set) var runningSince: Int64
    private var waiting = false
    private var lastRecorded: [TopicPartition: Int64]?

    init(runningSince: Int64) {
        self.runningSince = runningSince
    }

    mutating func observe(_ backlog: TrackerBacklog, now: Int64) -> Verdict {
        let stalled = backlog.readable > 0 && lastRecorded == backlog.recorded
        lastRecorded = backlog.recorded
        let reason = backlog.records > Watchdog.trackerBacklogLimit ? "to catch up" : stalled ? "to record again" : nil
        guard let reason else {
            if waiting {
                waiting = false
                runningSince = now
            }
            return .current
        }
        defer { waiting = true }
        return waiting ? .waiting : .startedWaiting(reason)
    }
}
