import IOThreads
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import ServiceLifecycle
import StoreDatabase
import FulfillmentMetrics
import Synchronization

/// Records every saga event into each order's history and keeps its state: a choreography
/// has no orchestrator, so the tracker reads every topic the saga writes. The latest event
/// (by when it happened) decides the state, except that a final state (`completed`,
/// `compensated`) always applies and never changes again, so late duplicates cannot
/// resurrect an order. The offsets it consumed are
/// stored in the same transaction as the history, so a redelivered event is recognised by
/// its offset and recorded once.
public struct SagaTracker: Service {
    let broker: any MessageBroker
    let store: DispatcherStore
    let configuration: SagaConfiguration
    let logger: Logger
    let journal: PoisonJournal?
    /// What the tracker counts as it records: orders by outcome, their durations, rejections.
    let metrics: OrderMetrics
    /// Called once its consumer has joined (for `/readyz`).
    public var onReady: (@Sendable () -> Void)?
    /// What each topic it reads means, worked out once: every record asks, and building the
    /// topic names to compare with cost more than the rest of naming the event.
    let roles: [String: TopicRole]
    /// The state update of an order entering each state, written once for the statement cache.
    let updateStatements: [OrderState: String]

    public init(
        broker: any MessageBroker, store: DispatcherStore, configuration: SagaConfiguration, journal: PoisonJournal? = nil,
        metrics: OrderMetrics = SagaMetrics(handles: .disabled, steps: []).orders, logger: Logger
    ) {
        self.metrics = metrics
        self.broker = broker
        self.store = store
        self.configuration = configuration
        self.journal = journal
        self.logger = logger
        let topics = configuration.topics
        self.roles = Dictionary(Self.topics(configuration).compactMap { topic in Self.role(ofTopic: topic, topics).map { (topic, $0) } },
                                uniquingKeysWith: { first, _ in first })
        self.updateStatements = Dictionary(uniqueKeysWithValues: OrderState.allCases.map { ($0, Self.updateStatement(entering: $0)) })
    }

    /// Every topic the tracker reads.
    public static func topics(_ configuration: SagaConfiguration) -> [String] {
        let t = configuration.topics
        var topics = [t.rejected, t.completed, t.compensated, t.manualReview, t.compensation, t.deadLetter(nil)]
        for step in SagaStep.allCases {
            topics += [t.requested(step), t.requested(step, priority: .vip), t.deadLetter(step)]
        }
        return topics + retryTopics(configuration)
    }

    /// The retry tiers' topics (delayed: a record there is read once its delay has passed).
    public static func retryTopics(_ configuration: SagaConfiguration) -> [String] {
        let t = configuration.topics
        return SagaStep.allCases.flatMap { step in (0..<configuration[step].retryTiers).map { t.retry(step, tier: $0 + 1) } }
            + (0..<configuration.compensation.retryTiers).map { t.retry(nil, tier: $0 + 1) }
    }

    /// Stores pointed at a log they were not made with (a fresh `--data-dir` with an old
    /// `--store`, topics deleted and recreated on a cluster): the tracker's recorded offsets
    /// lie past the end of the log. Left alone, it would skip every new event as recorded
    /// already, and no order would ever be seen to finish.
    public struct ForeignStore: Error, CustomStringConvertible {
        public var description: String
    }

    /// Throws `ForeignStore` when a recorded offset is past the end of its partition.
    public static func checkStoreMatchesLog(_ store: DispatcherStore, location: String, broker: any MessageBroker) async throws {
        let recorded = try await BlockingIO.run { try store.trackerOffsets() }
        var ends: [String: [Int: Int64]] = [:]
        for (tp, next) in recorded.sorted(by: { $0.key < $1.key }) where next > 0 {
            let (topic, partition) = (tp.topic, tp.partition)
            if ends[topic] == nil {
                let description = try? await broker.describeTopic(topic)
                ends[topic] = Dictionary(uniqueKeysWithValues: (description?.partitions ?? []).map { ($0.partition, $0.endOffset) })
            }
            let end = ends[topic]?[partition] ?? 0
            if next > end {
                throw ForeignStore(description: """
                    the stores at \(location) were made with another log: the tracker recorded \(topic)/\(partition) up to offset \(next), \
                    but this broker's \(topic)/\(partition) ends at \(end) (a fresh --data-dir with an old --store, or topics recreated on the cluster). \
                    Use the --data-dir or cluster these stores belong to, or a fresh --store
                    """)
            }
        }
    }

    public func run() async throws {
        let store = self.store
        try await BlockingIO.run {
            try store.backfillOpenOrders()
            try store.backfillCountedCompensations()
        }
        // The gauges of the first acceptance and the last completion start from what the store has.
        let (first, last) = try await BlockingIO.run {
            (try store.connection.scalar("SELECT MIN(created_at) FROM orders"), try store.connection.scalar("SELECT MAX(finished_at) FROM orders WHERE state = 'completed'"))
        }
        if let first { metrics.firstAccepted.offer(Double(first) / 1000) }
        if let last { metrics.lastCompleted.offer(Double(last) / 1000) }
        // Filled from the store's offsets by each batch's transaction (`record`).
        let consumed = ConsumedOffsets([])
        var runtime = WorkerRuntimeConfiguration(group: Self.group, standardTopics: Self.topics(configuration), priorityTopics: [], policy: StepPolicy(), router: nil)
        // Large transactions: the pages a batch rewrites (its orders' rows, the index of
        // their ids) take several of its records each. After a 200,000-order saga's last
        // order the tracker needed 8.9 s with 20,000 records instead of 23.3 s with 5,000,
        // and with its history in `history_recent` 10,000 were still slower than 20,000
        // (docs/performance.md). Two batches in hand (one recorded, one filling), not the
        // runtime's default four: when the tracker catches up, its records in hand are most
        // of the memory it adds.
        runtime.batchSize = Self.batchSize
        runtime.maxInHand = 2 * Self.batchSize
        // One flusher: batches are recorded in consumption order, as the recorded offsets
        // (which skip what a redelivery repeats) assume.
        runtime.flushers = 1
        runtime.gatherFor = .milliseconds(50)
        runtime.journal = journal
        runtime.onReady = onReady
        runtime.startOffsets = { [self] partitions in await startOffsets(of: partitions) }
        runtime.onCommitted = { [self] offsets in await noteRecordsSetAside(upTo: offsets, consumed: consumed) }
        let recent = RecentHistory(rows: Int(try await BlockingIO.run { try store.connection.scalar("SELECT COUNT(*) FROM history_recent") ?? 0 }))
        try await WorkerRuntime(broker: broker, handler: Recorder(tracker: self, consumed: consumed, recent: recent), configuration: runtime, logger: logger).run()
    }

    static let batchSize = 20_000

    /// Where the tracker reads partitions it is granted: where its store stopped, not at the
    /// group's commit, which the store's transactions go ahead of. A store behind the group
    /// (restored from a backup) would otherwise never see the events between, and the orders
    /// they finish would stay open. A partition without a row is read from its start: where
    /// the tracker starts on partitions it never read was written as rows when the store
    /// first started (`DispatcherStore.settleTrackerStart`). When the store cannot answer
    /// after a few tries, the group's commits are used.
    func startOffsets(of partitions: Set<TopicPartition>) async -> [TopicPartition: Int64] {
        let store = self.store
        for attempt in 1...Self.startOffsetAttempts {
            do {
                let recorded = try await BlockingIO.run { try store.trackerOffsets() }
                return Dictionary(uniqueKeysWithValues: partitions.map { ($0, recorded[$0] ?? 0) })
            } catch {
                if attempt == Self.startOffsetAttempts {
                    logger.error("the tracker's store did not say where it stopped; reading from the group's commits, which may skip events it has not recorded",
                                 metadata: ["error.message": "\(error)"])
                } else {
                    try? await Task.sleep(for: .milliseconds(250 * attempt))
                }
            }
        }
        return [:]
    }

    static let startOffsetAttempts = 5

    /// Records set aside as poison never reach `record`, so the store's offsets stay before
    /// them, and the tracker would read them again whenever it starts (crashing again, for a
    /// record that crashes the process). A commit says every record before it is finished;
    /// the store's offsets are raised to it where they are behind.
    func noteRecordsSetAside(upTo committed: [TopicPartition: Int64], consumed: ConsumedOffsets) async {
        let behind = consumed.behind(committed)
        guard !behind.isEmpty else { return }
        let store = self.store
        do {
            try await BlockingIO.run {
                try store.connection.transaction { db in
                    for (tp, next) in behind {
                        try db.run(DispatcherStore.raiseTrackerOffset, [.text(tp.topic), .integer(Int64(tp.partition)), .integer(next)])
                    }
                }
            }
            consumed.advance(to: behind)
        } catch {
            logger.warning("the tracker could not note records set aside; it reads them again at its next start", metadata: ["error.message": "\(error)"])
        }
    }

    /// Before the dispatcher's services start: the store must belong to this log
    /// (`checkStoreMatchesLog`), and where the tracker starts on partitions its store never
    /// recorded is settled, once (`DispatcherStore.settleTrackerStart`).
    public static func prepareStore(_ store: DispatcherStore, location: String, broker: any MessageBroker) async throws {
        try await checkStoreMatchesLog(store, location: location, broker: broker)
        guard try await !BlockingIO.run({ try store.trackerStartSettled() }) else { return }
        // A commit past its partition's end (topics made again with the group's offsets
        // kept) would read as events recorded that the log never had: at most the end.
        let positions = try await broker.lag(group: group).compactMap { lag in
            lag.committedOffset.map { (TopicPartition(lag.topic, lag.partition), min($0, lag.endOffset)) }
        }
        try await BlockingIO.run { try store.settleTrackerStart(groupPositions: Dictionary(positions, uniquingKeysWith: max)) }
    }

    /// The tracker's consumer group.
    public static let group = "tracker"

    /// The tracker's part in the worker runtime: a batch of events recorded in one transaction.
    struct Recorder: StepHandler {
        let tracker: SagaTracker
        let consumed: ConsumedOffsets
        let recent: RecentHistory
        var name: String { "tracker" }
        var performsInline: Bool { true }
        /// No order waits for its history: on a busy machine the steps go first.
        var storePriority: BlockingIO.Priority { .background }

        func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws {}

        func apply(_ batch: [(message: InboundMessage, work: Void)]) throws -> [HandlerResult] {
            let recorded = try tracker.record(batch.map(\.message.record), consumed: consumed)
            recent.add(recorded)
            if recent.shouldMove(batchWasFull: batch.count >= SagaTracker.batchSize) {
                try tracker.moveRecentHistory()
                recent.moved()
            }
            return Array(repeating: .success([]), count: batch.count)
        }
    }

    /// How many history rows wait in `history_recent` to be moved into `history`.
    ///
    /// `history`'s index is keyed by order, and the orders a busy saga has in flight span
    /// all of it: recorded straight into it, each batch rewrote about one index page per row,
    /// and that was most of the tracker's time once it fell behind (docs/performance.md).
    /// So the tracker records into `history_recent`, which has no index, and moves its rows
    /// into `history` sorted by order, in one statement: the index pages are then rewritten
    /// once per move. While the tracker keeps up (its batches are not full), it moves after
    /// each batch, so `history_recent` stays small; while it catches up, rows wait until
    /// `moveAtRows` of them are there. Readers see both tables (`every_history`).
    final class RecentHistory: Sendable {
        /// Readers scan `history_recent` (one order's history looks through all of it), so
        /// it is kept to about 20 MB.
        static let moveAtRows = 200_000
        private let rows: Mutex<Int>

        init(rows: Int) { self.rows = Mutex(rows) }

        func add(_ n: Int) { rows.withLock { $0 += n } }
        func moved() { rows.withLock { $0 = 0 } }
        func shouldMove(batchWasFull: Bool) -> Bool {
            rows.withLock { rows in rows >= Self.moveAtRows || (!batchWasFull && rows > 0) }
        }
    }

    /// Moves every row of `history_recent` into `history` in one transaction, sorted by
    /// order (then by when, then as recorded, which `every_history`'s readers keep).
    func moveRecentHistory() throws {
        try store.connection.transaction { db in
            try db.run("INSERT INTO history (\(DispatcherStore.historyColumns)) SELECT \(DispatcherStore.historyColumns) FROM history_recent ORDER BY order_id, at, rowid")
            try db.emptyTable("history_recent")
        }
    }

    struct Event {
        var orderID: String
        var name: String
        var step: SagaStep?
        var state: OrderState?
        var failedStep: SagaStep?
    }

    /// What records of one topic are, before their headers are read.
    enum TopicRole: Equatable {
        /// The event is the same for every record of the topic.
        case fixed(name: String, state: OrderState?)
        case stepRequest(SagaStep)
        case stepRetry(SagaStep)
        case stepDeadLetter(SagaStep)
    }

    static func role(ofTopic topic: String, _ t: SagaTopics) -> TopicRole? {
        if topic == t.completed { return .fixed(name: "completed", state: .completed) }
        if topic == t.compensated { return .fixed(name: "compensated", state: .compensated) }
        if topic == t.manualReview { return .fixed(name: "manual_review", state: .manualReview) }
        if topic == t.rejected { return .fixed(name: "rejected", state: nil) }
        if topic == t.compensation { return .fixed(name: "compensation_requested", state: .compensating) }
        // History only: the driver parks the order next (`manual_review`), and both records
        // carry the same failure time, so letting this one set a state could, depending on
        // which topic is read first, take a parked order back to `compensating`.
        if topic == t.deadLetter(nil) { return .fixed(name: "compensation_dead_lettered", state: nil) }
        if topic.hasPrefix(t.compensation + ".retry.") { return .fixed(name: "compensation_retry_scheduled", state: .compensating) }
        guard let step = t.step(ofTopic: topic) else { return nil }
        if topic == t.deadLetter(step) { return .stepDeadLetter(step) }
        if topic.hasPrefix(t.requested(step) + ".retry.") { return .stepRetry(step) }
        return .stepRequest(step)
    }

    func classify(_ record: ConsumerRecord) -> Event? {
        let orderID = InboundMessage.orderID(of: record)
        guard !orderID.isEmpty, let role = roles[record.topic] ?? Self.role(ofTopic: record.topic, configuration.topics) else { return nil }
        switch role {
        case .fixed(let name, let state):
            return Event(orderID: orderID, name: name, state: state)
        case .stepDeadLetter(let step):
            // A late request for an order already compensated fails with OrderCompensated:
            // history only (the driver ignores it too), or it would take a parked order back
            // to `compensating`.
            let late = record.header(SagaHeader.errorClass) == "OrderCompensated"
            return Event(orderID: orderID, name: "dead_lettered", step: step, state: late ? nil : .compensating, failedStep: late ? nil : step)
        case .stepRetry(let step):
            return Event(orderID: orderID, name: "retry_scheduled", step: step, state: OrderState(step: step))
        case .stepRequest(let step):
            let recovered = record.header(SagaHeader.recoveredBy) != nil ? "recovered" : record.header(SagaHeader.redriven) != nil ? "redriven" : "requested"
            return Event(orderID: orderID, name: recovered, step: step, state: OrderState(step: step))
        }
    }

    struct StateUpdate {
        var state: OrderState
        var at: Int64
        /// Where in the batch the record that set `state` is: the order's row is made from it
        /// when none exists yet.
        var record: Int
        var attempt: Int64?
        var failedStep: SagaStep?
        var errorClass: String?
        var errorMessage: String?

        init(state: OrderState, at: Int64, record: Int) {
            self.state = state
            self.at = at
            self.record = record
        }

        /// Whether `state` at `at` replaces `current` at `currentAt` (neither final). The later
        /// wins; at the same millisecond a terminal state (parked for manual review) is not
        /// replaced by one that is not. A dead letter and the manual-review record it causes
        /// carry the same time, and which the tracker reads first depends on how its fetch
        /// goes round the partitions: the order stayed `compensating` when both came in one
        /// batch, the dead letter's topic sorting after `orders.manual-review`. The update
        /// statement keeps the same rule across batches (`updateStatement`).
        static func replaces(_ state: OrderState, at: Int64, _ current: OrderState, at currentAt: Int64) -> Bool {
            at > currentAt || (at == currentAt && (state.isTerminal || !current.isTerminal))
        }

        /// Another event of the order in the same batch: the latest state wins, and a final
        /// state (completed, compensated) wins over anything else, whatever its time. At the
        /// same time a parked order stays parked (`replaces`).
        mutating func merge(state: OrderState, at: Int64, record: Int, attempt: Int64?, failedStep: SagaStep?, errorClass: String?, errorMessage: String?) {
            if !self.state.isFinal && (Self.replaces(state, at: at, self.state, at: self.at) || state.isFinal) {
                self.state = state
                self.at = at
                self.record = record
            }
            self.attempt = attempt ?? self.attempt
            self.failedStep = failedStep ?? self.failedStep
            self.errorClass = errorClass ?? self.errorClass
            self.errorMessage = errorMessage ?? self.errorMessage
        }
    }

    /// The first event of an order (normally its payment request from the intake): keep its
    /// facts (amount, units, tier, lane, body) and record when and where it was submitted.
    /// Returns the order's lane and submission time when it is new to the tracker.
    ///
    /// `bodyAtIntake`: the intake stored the order, body and all, so the row keeps an empty
    /// body instead of a second copy (`DispatcherStore.bodies` reads it from the intake). A
    /// body is a few hundred bytes, most of the row, and the row is written again at every
    /// state change: leaving it out made the tracker's rebuild of 300,000 orders from the log
    /// about 6 % faster, with 15 % less system CPU and a store 38 % smaller.
    @discardableResult
    func startTracking(
        _ orderID: String, _ record: ConsumerRecord, at: Int64, bodyAtIntake: Bool, _ db: StoreConnection.Transaction, _ counts: inout Counts
    ) throws -> (priority: String, createdAt: Int64)? {
        guard let order = ParsedOrders.shared.order(orderID, bytes: record.value) ?? (try? Order.decode(record.value)) else { return nil }
        let createdAt = record.header(SagaHeader.createdAt).flatMap(Int64.init) ?? at
        let priority = record.header(SagaHeader.priority) ?? Priority.standard.rawValue
        let inserted = try db.run(
            "INSERT OR IGNORE INTO orders (order_id, body, amount_cents, units, tier, priority, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?, ?)",
            [.text(orderID), .blob(bodyAtIntake ? [] : record.value), .integer(order.amountCents), .integer(Int64(order.totalUnits)), .text(order.customerTier.rawValue),
             .text(priority), .integer(createdAt), .integer(createdAt)])
        if record.header(SagaHeader.createdAt) != nil { counts.historyRows += try recordAcceptance(orderID, record, createdAt, db) }
        guard inserted == 1 else { return nil }
        try db.run("INSERT OR IGNORE INTO open_orders VALUES (?)", [.text(orderID)])
        return (priority, createdAt)
    }

    /// What one recorded batch changed, counted once its transaction committed.
    struct Counts {
        var accepted: [String: Int] = [:]
        var rejected: [String: Int] = [:]
        var finished: [(outcome: String, tier: String, seconds: Double, at: Int64)] = []
        var compensationsStarted = 0
        var firstAccepted: Int64?
        /// Rows written to `history_recent`.
        var historyRows = 0

        mutating func started(_ order: (priority: String, createdAt: Int64)) {
            accepted[order.priority, default: 0] += 1
            firstAccepted = min(firstAccepted ?? order.createdAt, order.createdAt)
        }
    }

    func count(_ counts: Counts) {
        for (tier, n) in counts.accepted { metrics.total["accepted", tier].increment(by: n) }
        for (reason, n) in counts.rejected {
            metrics.total["rejected", "unknown"].increment(by: n)
            metrics.rejections[reason].increment(by: n)
        }
        for f in counts.finished {
            metrics.total[f.outcome, f.tier].increment()
            metrics.duration[f.tier, f.outcome].recordNanoseconds(Int64(max(0, f.seconds) * 1e9))
            if f.outcome == OrderState.completed.rawValue { metrics.lastCompleted.offer(Double(f.at) / 1000) }
        }
        if counts.compensationsStarted > 0 { metrics.compensationsStarted.increment(by: counts.compensationsStarted) }
        if let first = counts.firstAccepted { metrics.firstAccepted.offer(Double(first) / 1000) }
    }

    /// The `accepted` history entry, at the submission time and position the intake reported.
    /// Returns the rows written (none when the record does not say where it was submitted).
    func recordAcceptance(_ orderID: String, _ record: ConsumerRecord, _ at: Int64, _ db: StoreConnection.Transaction) throws -> Int {
        guard let source = record.header(SagaHeader.sourcePosition).flatMap(RecordCoordinates.init) else { return 0 }
        return try db.run(
            "INSERT INTO history_recent (order_id, at, topic, partition, offset, event) VALUES (?, ?, ?, ?, ?, 'accepted')",
            [.text(orderID), .integer(at), .text(source.tp.topic), .integer(Int64(source.tp.partition)), .integer(source.offset)])
    }

    static let historyWidth = 10
    static let historyRowsPerStatement = 50
    static func historyInsert(rows: Int) -> String {
        "INSERT INTO history_recent (\(DispatcherStore.historyColumns)) VALUES "
            + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
    }
    static let fullHistoryInsert = historyInsert(rows: historyRowsPerStatement)

    /// The update of an order's row to `state`. A terminal state is counted when the order
    /// enters it: the update changes a row only then (a final order is never updated again; a
    /// parked one is not parked twice), and says when the order was accepted.
    static func updateStatement(entering state: OrderState) -> String {
        let entering = state.isTerminal ? " AND state <> '\(state.rawValue)' RETURNING created_at, priority" : ""
        return """
            UPDATE orders SET state = ?, updated_at = ?, attempt = COALESCE(?, attempt),
                failed_step = COALESCE(?, failed_step), error_class = COALESCE(?, error_class), error_message = COALESCE(?, error_message),
                finished_at = COALESCE(?, finished_at)
            WHERE order_id = ? AND state NOT IN ('completed', 'compensated')
                AND (updated_at < ? OR (updated_at = ? AND (? = 1 OR state <> 'manual_review')) OR ? = 1)
            """ + entering
    }

    /// Records a batch in one transaction; returns how many history rows it wrote.
    @discardableResult
    func record(_ records: [ConsumerRecord], consumed: ConsumedOffsets) throws -> Int {
        var next: [TopicPartition: Int64] = [:]
        let counts = try store.connection.transaction { db -> Counts in
            // The store's offsets are the truth, read in the transaction that moves them: a
            // commit whose reply was lost (a dropped PostgreSQL connection) is retried with
            // the offsets in memory behind the store, and must not record its batch twice.
            // (What that batch counted in the metrics is then not counted: the counters may
            // fall short of the store after such a loss, never above it.)
            consumed.advance(to: Dictionary(try db.query(DispatcherStore.selectTrackerOffsets, [], DispatcherStore.trackerOffset), uniquingKeysWith: max))
            let fresh = consumed.filter(records)
            var counts = Counts()
            guard !fresh.isEmpty else { return counts }
            next = ConsumedOffsets.next(fresh)
            var compensating: Set<String> = []
            var history: [SQLValue] = []
            history.reserveCapacity(fresh.count * Self.historyWidth)
            var updates: [String: StateUpdate] = [:]
            var order: [String] = []
            let events = fresh.map(classify)
            // When the batch's orders that may start here were submitted, read in one
            // statement; kept current below as orders start or move earlier.
            let mayStart = events.compactMap { event in event.flatMap { ($0.step == .payment || $0.step == nil) && $0.state != nil ? $0.orderID : nil } }
            var createdAtOf = Dictionary(try db.query("SELECT order_id, created_at FROM orders WHERE order_id = ANY(?)", anyOf: mayStart) {
                ($0.text(0), $0.int(1))
            }, uniquingKeysWith: { first, _ in first })
            // Of the orders that start here, those whose bodies the intake has.
            let bodiesAtIntake = try store.submittedIDs(mayStart.filter { createdAtOf[$0] == nil })
            for (index, (record, event)) in zip(fresh, events).enumerated() {
                guard let event else { continue }
                let at = record.header(SagaHeader.failedAt).flatMap(Int64.init) ?? record.timestamp
                // An order starts being tracked at its first payment request (or, for orders
                // that reached the saga some other way, at whatever event comes first for it).
                let mayBeFirst = event.step == .payment || event.step == nil
                if mayBeFirst, event.state != nil {
                    if let createdAt = createdAtOf[event.orderID] {
                        // Events of different topics arrive in any order: the intake's request
                        // (which says when the order was submitted) may come after a later event.
                        if let submitted = record.header(SagaHeader.createdAt).flatMap(Int64.init), submitted < createdAt {
                            try db.run("UPDATE orders SET created_at = ? WHERE order_id = ?", [.integer(submitted), .text(event.orderID)])
                            counts.historyRows += try recordAcceptance(event.orderID, record, submitted, db)
                            counts.firstAccepted = min(counts.firstAccepted ?? submitted, submitted)
                            createdAtOf[event.orderID] = submitted
                        }
                    } else if let new = try startTracking(event.orderID, record, at: at, bodyAtIntake: bodiesAtIntake.contains(event.orderID), db, &counts) {
                        counts.started(new)
                        createdAtOf[event.orderID] = new.createdAt
                    } else if let existing = try db.scalar("SELECT created_at FROM orders WHERE order_id = ?", [.text(event.orderID)]) {
                        createdAtOf[event.orderID] = existing
                    }
                }
                let attempt = record.header(SagaHeader.attempt).flatMap(Int64.init)
                let errorClass = record.header(SagaHeader.errorClass)
                if event.name == "rejected" { counts.rejected[errorClass ?? "unknown", default: 0] += 1 }
                if event.name == "compensation_requested", !compensating.contains(event.orderID) {
                    compensating.insert(event.orderID)
                    // Each order counted once, at its first request (a retried or redriven one is not new).
                    counts.compensationsStarted += try db.run("INSERT OR IGNORE INTO compensations_counted VALUES (?)", [.text(event.orderID)])
                }
                let errorMessage = record.header(SagaHeader.errorMessage)
                history += [
                    .text(event.orderID), .integer(at), .text(record.topic), .integer(Int64(record.partition)), .integer(record.offset), .text(event.name),
                    event.step.map { .text($0.rawValue) } ?? .null, attempt.map { .integer($0) } ?? .null,
                    errorClass.map { .text($0) } ?? .null, errorMessage.map { .text($0) } ?? .null,
                ]
                guard let state = event.state else { continue }
                // Several events of one order in a batch: one update, with the latest state; a
                // final state (completed, compensated) wins over anything else, whatever its time.
                // Changed in place: one lookup, no copy of the update.
                let known = updates.count
                updates[event.orderID, default: StateUpdate(state: state, at: at, record: index)].merge(
                    state: state, at: at, record: index, attempt: attempt, failedStep: event.failedStep, errorClass: errorClass, errorMessage: errorMessage)
                if updates.count > known { order.append(event.orderID) }
            }
            // History rows go in 50 to a statement (10 values each).
            counts.historyRows += history.count / Self.historyWidth
            var start = 0
            while start < history.count {
                let end = min(history.count, start + Self.historyRowsPerStatement * Self.historyWidth)
                let rows = (end - start) / Self.historyWidth
                try db.run(rows == Self.historyRowsPerStatement ? Self.fullHistoryInsert : Self.historyInsert(rows: rows), Array(history[start..<end]))
                start = end
            }
            func values(_ id: String, _ u: StateUpdate) -> [SQLValue] {
                [
                    .text(u.state.rawValue), .integer(u.at), u.attempt.map { .integer($0) } ?? .null,
                    u.failedStep.map { .text($0.rawValue) } ?? .null, u.errorClass.map { .text($0) } ?? .null, u.errorMessage.map { .text($0) } ?? .null,
                    u.state.isTerminal ? .integer(u.at) : .null, .text(id), .integer(u.at), .integer(u.at),
                    .integer(u.state.isTerminal ? 1 : 0), .integer(u.state.isFinal ? 1 : 0),
                ]
            }
            /// Orders whose update changed nothing and that were not seen in this batch's
            /// lookups: maybe out of date or final already, maybe not tracked yet.
            var unchanged: [String] = []
            for id in order {
                let u = updates[id]!
                let sql = updateStatements[u.state]!  // every state is in the table
                if u.state.isTerminal {
                    for (createdAt, priority) in try db.query(sql, values(id, u), { ($0.int(0), $0.text(1)) }) {
                        counts.finished.append((u.state.rawValue, priority, Double(u.at - createdAt) / 1000, u.at))
                        if u.state.isFinal { try db.run("DELETE FROM open_orders WHERE order_id = ?", [.text(id)]) }
                    }
                } else if try db.run(sql, values(id, u)) == 0, createdAtOf[id] == nil {
                    unchanged.append(id)
                }
            }
            // A later step's event read before the order's first one (the tracker reads many
            // topics, and catching up it can be far ahead on one): the order starts being
            // tracked here, or its state would wait for its next event. Its submission time
            // is corrected when the intake's request comes. (Terminal states come from topics
            // of no step, whose events start tracking above.)
            if !unchanged.isEmpty {
                let tracked = Set(try db.query("SELECT order_id FROM orders WHERE order_id = ANY(?)", anyOf: unchanged) { $0.text(0) })
                let untracked = unchanged.filter { !tracked.contains($0) }
                let bodiesAtIntake = try store.submittedIDs(untracked)
                for id in untracked {
                    let u = updates[id]!
                    guard let new = try startTracking(id, fresh[u.record], at: u.at, bodyAtIntake: bodiesAtIntake.contains(id), db, &counts) else { continue }
                    counts.started(new)
                    try db.run(updateStatements[u.state]!, values(id, u))
                }
            }
            for (tp, next) in next {
                try db.run(DispatcherStore.raiseTrackerOffset, [.text(tp.topic), .integer(Int64(tp.partition)), .integer(next)])
            }
            return counts
        }
        consumed.advance(to: next)
        count(counts)
        return counts.historyRows
    }
}

/// The next offset the tracker has not recorded yet, per partition, kept in its own store.
/// A batch holds runs of records of one partition, so each run looks its partition up once.
final class ConsumedOffsets: Sendable {
    private let offsets: Mutex<[TopicPartition: Int64]>

    init(_ stored: [(TopicPartition, Int64)]) {
        offsets = Mutex(Dictionary(stored, uniquingKeysWith: max))
    }

    /// The records not recorded before (a redelivery after a crash repeats some), each once:
    /// a partition handed back by a rebalance is read again from its last commit while the
    /// first copies are still in hand, so one batch can hold an offset twice.
    func filter(_ records: [ConsumerRecord]) -> [ConsumerRecord] {
        offsets.withLock { offsets in
            var fresh: [ConsumerRecord]?
            var run: (topic: String, partition: Int, next: Int64)?
            /// Where earlier runs of this batch left their partitions.
            var passed: [TopicPartition: Int64] = [:]
            for (i, record) in records.enumerated() {
                if run == nil || run!.partition != record.partition || run!.topic != record.topic {
                    if let ended = run { passed[TopicPartition(ended.topic, ended.partition)] = ended.next }
                    let tp = record.topicPartition
                    run = (record.topic, record.partition, passed[tp] ?? offsets[tp] ?? 0)
                }
                if record.offset < run!.next {
                    if fresh == nil { fresh = Array(records[..<i]) }
                } else {
                    run!.next = record.offset + 1
                    fresh?.append(record)
                }
            }
            return fresh ?? records
        }
    }

    /// The offset after the last of `records` in each of their partitions.
    static func next(_ records: [ConsumerRecord]) -> [TopicPartition: Int64] {
        var next: [TopicPartition: Int64] = [:]
        var run: (topic: String, partition: Int, next: Int64)?
        func close() {
            guard let run else { return }
            let partition = TopicPartition(run.topic, run.partition)
            next[partition] = max(next[partition] ?? 0, run.next)
        }
        for record in records {
            if let current = run, current.partition == record.partition, current.topic == record.topic {
                run!.next = max(current.next, record.offset + 1)
            } else {
                close()
                run = (record.topic, record.partition, record.offset + 1)
            }
        }
        close()
        return next
    }

    /// The offsets of `committed` past what was recorded.
    func behind(_ committed: [TopicPartition: Int64]) -> [TopicPartition: Int64] {
        offsets.withLock { offsets in committed.filter { tp, next in next > (offsets[tp] ?? 0) } }
    }

    func advance(to next: [TopicPartition: Int64]) {
        offsets.withLock { offsets in
            for (tp, offset) in next { offsets[tp] = max(offsets[tp] ?? 0, offset) }
        }
    }
}
