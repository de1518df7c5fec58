import Alerting
import Foundation
import Messaging
import StoreDatabase
import SagaDomain

/// The dispatcher's stores. `dispatcher.sqlite` (the tracker's): each order's state and
/// facts, its full history, alerts and redrive marks. `intake.sqlite` (the intake's): every
/// order submitted, by id with its canonical body (deduplication), and every rejection. Two
/// files, so intake and tracker never wait for each other's transactions; the intake reads
/// the tracker's state through a connection of its own (WAL readers never block).
public final class DispatcherStore: Sendable {
    public let connection: StoreConnection
    public let intake: StoreConnection
    /// A read-only view of `dispatcher.sqlite` (the intake's duplicate checks, progress
    /// counts): WAL readers neither block nor wait for the tracker's writes.
    public let stateReader: StoreConnection
    /// A read-only view of `intake.sqlite`, for the tracker and the readers of order bodies:
    /// reading on `intake` would hold the intake's transactions up.
    public let intakeReader: StoreConnection

    /// `orders_parked` and `orders_compensated` are partial indexes: an update changes them only
    /// when an order enters or leaves those rare states, where an index over every order's
    /// state was rewritten at each state change (`open_orders` replaced that). They let a run
    /// count its orders by state from indexes alone (`orderCounts`).
    static let schema = """
        CREATE TABLE IF NOT EXISTS orders (
            order_id TEXT PRIMARY KEY,
            body BLOB NOT NULL,
            amount_cents INTEGER NOT NULL,
            units INTEGER NOT NULL,
            tier TEXT NOT NULL,
            priority TEXT NOT NULL,
            state TEXT NOT NULL,
            failed_step TEXT,
            attempt INTEGER NOT NULL DEFAULT 1,
            error_class TEXT,
            error_message TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            finished_at INTEGER,
            recoveries INTEGER NOT NULL DEFAULT 0);
        DROP INDEX IF EXISTS orders_state;
        DROP INDEX IF EXISTS orders_open;
        CREATE INDEX IF NOT EXISTS orders_parked ON orders(order_id) WHERE state = 'manual_review';
        CREATE INDEX IF NOT EXISTS orders_compensated ON orders(order_id) WHERE state = 'compensated';
        CREATE TABLE IF NOT EXISTS open_orders (order_id TEXT PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS tracker_marks (name TEXT PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS history (\(historyColumnTypes));
        CREATE INDEX IF NOT EXISTS history_order ON history(order_id, at);
        CREATE TABLE IF NOT EXISTS history_recent (\(historyColumnTypes));
        CREATE VIEW IF NOT EXISTS every_history AS \(everyHistory);
        CREATE TABLE IF NOT EXISTS compensations_counted (order_id TEXT PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS tracker_offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition));
        CREATE TABLE IF NOT EXISTS redriven (
            topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL, at INTEGER NOT NULL,
            PRIMARY KEY (topic, partition, offset));
        CREATE TABLE IF NOT EXISTS alerts (at INTEGER NOT NULL, order_id TEXT, kind TEXT NOT NULL, message TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS firing_alerts (alert_key TEXT PRIMARY KEY, alert TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS alert_evaluations (id INTEGER PRIMARY KEY, evaluated_at DOUBLE PRECISION NOT NULL);
        """

    /// The columns of `history` and `history_recent`, which hold the same rows.
    static let historyColumnTypes = """
        order_id TEXT NOT NULL, at INTEGER NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
        event TEXT NOT NULL, step TEXT, attempt INTEGER, error_class TEXT, error_message TEXT
        """

    /// The history's columns, in the order the tracker writes them.
    static let historyColumns = "order_id, at, topic, partition, offset, event, step, attempt, error_class, error_message"

    /// Every history row: those moved into `history` (indexed by order) and those the tracker
    /// recorded since (`history_recent`, not indexed; see `SagaTracker.moveRecentHistory`).
    /// `stage, seq` keep the order in which rows were recorded: a moved row before a recent one.
    static let everyHistory = """
        SELECT \(historyColumns), 0 AS stage, rowid AS seq FROM history
        UNION ALL SELECT \(historyColumns), 1 AS stage, rowid AS seq FROM history_recent
        """

    /// What a store made before `history_recent` existed, opened read-only, has instead.
    static let historyAlone = "(SELECT \(historyColumns), 0 AS stage, rowid AS seq FROM history) AS every_history"

    static let intakeSchema = """
        CREATE TABLE IF NOT EXISTS submitted (order_id TEXT PRIMARY KEY, body BLOB NOT NULL, created_at INTEGER NOT NULL, accepted_at INTEGER, source TEXT);
        CREATE TABLE IF NOT EXISTS rejections (
            topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
            order_id TEXT, reason TEXT NOT NULL, field TEXT, message TEXT NOT NULL, at INTEGER NOT NULL,
            UNIQUE (topic, partition, offset));
        """

    public init(location: String, readOnly: Bool = false) throws {
        connection = try StoreConnection.open(location: location, name: "dispatcher", readOnly: readOnly)
        if !readOnly { try connection.execute(Self.schema) }
        intake = try StoreConnection.open(location: location, name: "intake", readOnly: readOnly)
        if !readOnly {
            try intake.execute(Self.intakeSchema)
            try Self.addLaterColumns(intake, postgres: StoreConnection.isPostgres(location))
        }
        stateReader = readOnly ? connection : try StoreConnection.open(location: location, name: "dispatcher", readOnly: true)
        intakeReader = readOnly ? intake : try StoreConnection.open(location: location, name: "intake", readOnly: true)
        // `order`, `stats` and `check` open a store read-only, perhaps one an older version
        // made, which has no `every_history` until a writer opens it (a writer has just made it).
        let hasView = !readOnly || (try? connection.query("SELECT 1 FROM every_history LIMIT 0") { _ in 1 }) != nil
        everyHistoryTable = hasView ? "every_history" : Self.historyAlone
    }

    /// Columns of `submitted` that came after the table; a store made before gets them, its
    /// rows NULL:
    /// - `accepted_at`: when the intake stored the order, by its clock. Its index is what the
    ///   watchdog's reconciliation walks; old rows are never reconciled.
    /// - `source`: where the order was read (`topic/partition/offset`), so a payment request
    ///   the watchdog publishes again says so too, and the order's history gets its
    ///   `accepted` row. Old rows' requests go without it.
    static func addLaterColumns(_ intake: StoreConnection, postgres: Bool) throws {
        for (column, sqliteType, postgresType) in [("accepted_at", "INTEGER", "BIGINT"), ("source", "TEXT", "TEXT")] {
            if postgres {
                try intake.execute("ALTER TABLE submitted ADD COLUMN IF NOT EXISTS \(column) \(postgresType)")
            } else if try !submittedHas(column, intake) {
                do {
                    try intake.execute("ALTER TABLE submitted ADD COLUMN \(column) \(sqliteType)")
                } catch {
                    // Another process opening the same old store may have added it first.
                    guard try submittedHas(column, intake) else { throw error }
                }
            }
        }
        try intake.execute("CREATE INDEX IF NOT EXISTS submitted_accepted ON submitted(accepted_at)")
    }

    private static func submittedHas(_ column: String, _ intake: StoreConnection) throws -> Bool {
        try intake.query("PRAGMA table_info(submitted)", []) { $0.text(1) }.contains(column)
    }

    /// Orders the intake stored between `after` (exclusive) and `upTo` whose first event the
    /// tracker never recorded, oldest first, and the last acceptance time looked at (`nil`:
    /// none in the window), each with where the intake read it. At most `limit` acceptances
    /// are looked at per call (no bodies: the intake's writes wait while its connection reads).
    public func acceptedNeverStarted(after: Int64, upTo: Int64, limit: Int = 10_000) throws -> (orders: [(id: String, source: String?)], lastLookedAt: Int64?) {
        let columns = "SELECT order_id, accepted_at, source FROM submitted"
        let row = { (r: SQLRow) in (id: r.text(0), acceptedAt: r.int(1), source: r.isNull(2) ? nil : r.text(2)) }
        var accepted = try intake.query(
            "\(columns) WHERE accepted_at > ? AND accepted_at <= ? ORDER BY accepted_at LIMIT ?", [.integer(after), .integer(upTo), .integer(Int64(limit))], row)
        guard var last = accepted.last?.acceptedAt else { return ([], nil) }
        // A full page may end inside one millisecond (an intake batch shares its time); the
        // next page starts after `last`, so that millisecond is taken whole: its rows on this
        // page are left for the next one, or, if it fills the page, all of them are read now.
        if accepted.count == limit {
            let before = accepted.filter { $0.acceptedAt < last }
            if let previous = before.last?.acceptedAt {
                accepted = before
                last = previous
            } else {
                accepted = try intake.query("\(columns) WHERE accepted_at = ?", [.integer(last)], row)
            }
        }
        let started = try startedOrders(accepted.map(\.id))
        return (accepted.filter { !started.contains($0.id) }.map { ($0.id, $0.source) }, last)
    }

    /// Which of `ids` the tracker has a row for (it saw at least one of their events).
    public func startedOrders(_ ids: [String]) throws -> Set<String> {
        Set(try stateReader.query("SELECT order_id FROM orders WHERE order_id = ANY(?)", anyOf: ids) { $0.text(0) })
    }

    /// The stored orders of `ids` (those the intake has), as the intake stored them: read in
    /// one read transaction on `intakeReader`, so the intake's writes do not wait for it.
    public func submittedOrders(_ ids: [String]) throws -> [(id: String, body: [UInt8], createdAt: Int64, source: String?)] {
        guard !ids.isEmpty else { return [] }
        return try intakeReader.withConnection { db in
            try db.query("SELECT order_id, body, created_at, source FROM submitted WHERE order_id = ANY(?)", anyOf: ids) {
                (id: $0.text(0), body: $0.blob(1), createdAt: $0.int(2), source: $0.isNull(3) ? nil : $0.text(3))
            }
        }
    }

    /// Which of `ids` the intake stored, with their bodies.
    public func submittedIDs(_ ids: [String]) throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        // One read transaction for the batch's keys (on SQLite a statement per key).
        return try intakeReader.withConnection { db in Set(try db.query("SELECT order_id FROM submitted WHERE order_id = ANY(?)", anyOf: ids) { $0.text(0) }) }
    }

    /// The body of each of `orders` (id and the tracker's `orders.body`) as it was submitted.
    /// The tracker keeps no second copy of a body the intake stored (it writes an empty one,
    /// which no accepted order has: `SagaTracker.startTracking`); those come from the intake.
    public func bodies(_ orders: [(id: String, body: [UInt8])]) throws -> [String: [UInt8]] {
        var bodies = Dictionary(orders.filter { !$0.body.isEmpty }.map { ($0.id, $0.body) }, uniquingKeysWith: { first, _ in first })
        for stored in try submittedOrders(orders.filter { $0.body.isEmpty }.map(\.id)) { bodies[stored.id] = stored.body }
        return bodies
    }

    /// The body of an order the tracker has, as it was submitted (`bodies`); nil when the
    /// tracker has no such order.
    public func body(of id: String) throws -> [UInt8]? {
        guard let own = try stateReader.query("SELECT body FROM orders WHERE order_id = ?", [.text(id)], { $0.blob(0) }).first else { return nil }
        return try bodies([(id, own)])[id]
    }

    /// What readers of the whole history select from: the `every_history` view, or, in a
    /// store an older version made, `history` alone.
    public let everyHistoryTable: String

    /// One order as `order <id>` shows it.
    public struct OrderRecord: Codable, Sendable {
        public var orderID: String
        public var state: String
        public var amountCents: Int64
        public var units: Int
        public var tier: String
        public var priority: String
        public var failedStep: String?
        public var errorClass: String?
        public var errorMessage: String?
        public var createdAt: Int64
        public var updatedAt: Int64
        public var finishedAt: Int64?
        public var recoveries: Int

        enum CodingKeys: String, CodingKey {
            case orderID = "order_id", state, amountCents = "amount_cents", units, tier, priority
            case failedStep = "failed_step", errorClass = "error_class", errorMessage = "error_message"
            case createdAt = "created_at", updatedAt = "updated_at", finishedAt = "finished_at", recoveries
        }

        /// Every key always present (`null` when there is no value): docs/schemas/order.schema.json.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(orderID, forKey: .orderID)
            try c.encode(state, forKey: .state)
            try c.encode(amountCents, forKey: .amountCents)
            try c.encode(units, forKey: .units)
            try c.encode(tier, forKey: .tier)
            try c.encode(priority, forKey: .priority)
            try c.encode(failedStep, forKey: .failedStep)
            try c.encode(errorClass, forKey: .errorClass)
            try c.encode(errorMessage, forKey: .errorMessage)
            try c.encode(createdAt, forKey: .createdAt)
            try c.encode(updatedAt, forKey: .updatedAt)
            try c.encode(finishedAt, forKey: .finishedAt)
            try c.encode(recoveries, forKey: .recoveries)
        }
    }

    public struct HistoryEntry: Codable, Sendable {
        public var at: Int64
        public var topic: String
        public var partition: Int
        public var offset: Int64
        public var event: String
        public var step: String?
        public var attempt: Int?
        public var errorClass: String?
        public var errorMessage: String?

        enum CodingKeys: String, CodingKey {
            case at, topic, partition, offset, event, step, attempt
            case errorClass = "error_class", errorMessage = "error_message"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(at, forKey: .at)
            try c.encode(topic, forKey: .topic)
            try c.encode(partition, forKey: .partition)
            try c.encode(offset, forKey: .offset)
            try c.encode(event, forKey: .event)
            try c.encode(step, forKey: .step)
            try c.encode(attempt, forKey: .attempt)
            try c.encode(errorClass, forKey: .errorClass)
            try c.encode(errorMessage, forKey: .errorMessage)
        }
    }

    public func order(_ id: String) throws -> OrderRecord? {
        try connection.query(
            "SELECT order_id, state, amount_cents, units, tier, priority, failed_step, error_class, error_message, created_at, updated_at, finished_at, recoveries FROM orders WHERE order_id = ?",
            [.text(id)]
        ) { row in
            OrderRecord(
                orderID: row.text(0), state: row.text(1), amountCents: row.int(2), units: Int(row.int(3)), tier: row.text(4), priority: row.text(5),
                failedStep: row.optionalText(6), errorClass: row.optionalText(7), errorMessage: row.optionalText(8),
                createdAt: row.int(9), updatedAt: row.int(10), finishedAt: row.optionalInt(11), recoveries: Int(row.int(12)))
        }.first
    }

    public func history(_ id: String) throws -> [HistoryEntry] {
        try connection.query(
            "SELECT at, topic, partition, offset, event, step, attempt, error_class, error_message FROM \(everyHistoryTable) WHERE order_id = ? ORDER BY at, stage, seq",
            [.text(id)]
        ) { row in
            HistoryEntry(
                at: row.int(0), topic: row.text(1), partition: Int(row.int(2)), offset: row.int(3), event: row.text(4), step: row.optionalText(5),
                attempt: row.optionalInt(6).map(Int.init), errorClass: row.optionalText(7), errorMessage: row.optionalText(8))
        }
    }

    public func rejections(orderID: String) throws -> [(reason: String, message: String, at: Int64)] {
        try intake.query("SELECT reason, message, at FROM rejections WHERE order_id = ? ORDER BY at", [.text(orderID)]) { ($0.text(0), $0.text(1), $0.int(2)) }
    }

    /// Orders per state.
    public func stateCounts() throws -> [String: Int] {
        Dictionary(uniqueKeysWithValues: try connection.query("SELECT state, COUNT(*) FROM orders GROUP BY state") { ($0.text(0), Int($0.int(1))) })
    }

    /// The orders a condition on `order_id` selects, by where they stand.
    public struct OrderCounts: Sendable, Equatable {
        public var tracked = 0
        /// In flight or parked: not yet completed or compensated.
        public var open = 0
        public var compensated = 0
        /// In manual review.
        public var parked = 0
        /// An order is open until it completes or is compensated.
        public var completed: Int { tracked - open - compensated }
        public var inFlight: Int { open - parked }
    }

    /// Counts from indexes alone: the orders' primary key, `open_orders`, and the partial
    /// indexes of compensated and parked orders, so the cost follows the number of ids, not
    /// their rows. Grouping the orders themselves by state (`stateCounts`) reads the whole
    /// table: 0.3 s at 100,000 orders and 3.6 s at a million, which a run that looked every
    /// 250 ms paid over and over. One statement, so the counts are one snapshot.
    public func orderCounts(where filter: (sql: String, values: [SQLValue])) throws -> OrderCounts {
        let sql = """
            SELECT (SELECT COUNT(*) FROM orders WHERE \(filter.sql)), (SELECT COUNT(*) FROM open_orders WHERE \(filter.sql)),
                (SELECT COUNT(*) FROM orders WHERE state = 'compensated' AND \(filter.sql)),
                (SELECT COUNT(*) FROM orders WHERE state = 'manual_review' AND \(filter.sql))
            """
        // The read-only connection: a read here never holds up the tracker's transactions.
        let rows = try stateReader.query(sql, Array(repeating: filter.values, count: 4).flatMap { $0 }) {
            OrderCounts(tracked: Int($0.int(0)), open: Int($0.int(1)), compensated: Int($0.int(2)), parked: Int($0.int(3)))
        }
        return rows.first ?? OrderCounts()
    }

    /// Orders not finished (in flight or parked), kept by the tracker: an order enters
    /// `open_orders` when it is first tracked and leaves when it completes or is compensated.
    /// Lists and counts of open orders walk it (a join by primary key per open order), never
    /// the table of every order; an index over `orders.state` would be rewritten on each of an
    /// order's state changes (measured: three times the cost of the tracker's updates).
    static let openJoin = "FROM open_orders x JOIN orders o ON o.order_id = x.order_id"

    /// Fills `open_orders` once for stores made before it existed.
    func backfillOpenOrders() throws {
        try connection.transaction { db in
            guard try db.scalar("SELECT 1 FROM tracker_marks WHERE name = 'open_orders'") == nil else { return }
            try db.run("INSERT OR IGNORE INTO open_orders SELECT order_id FROM orders WHERE state NOT IN ('completed','compensated')")
            try db.run("INSERT INTO tracker_marks VALUES ('open_orders')")
        }
    }

    /// Fills `compensations_counted` once for stores made before it existed (when every
    /// history row was in `history`).
    func backfillCountedCompensations() throws {
        try connection.transaction { db in
            guard try db.scalar("SELECT 1 FROM tracker_marks WHERE name = 'compensations_counted'") == nil else { return }
            try db.run("INSERT OR IGNORE INTO compensations_counted SELECT DISTINCT order_id FROM history WHERE event = 'compensation_requested'")
            try db.run("INSERT INTO tracker_marks VALUES ('compensations_counted')")
        }
    }

    /// The offset after the last record the tracker recorded, per partition it recorded.
    public func trackerOffsets() throws -> [TopicPartition: Int64] {
        Dictionary(try connection.query(Self.selectTrackerOffsets, [], Self.trackerOffset), uniquingKeysWith: max)
    }

    static let selectTrackerOffsets = "SELECT topic, partition, next_offset FROM tracker_offsets"
    static func trackerOffset(_ row: SQLRow) -> (TopicPartition, Int64) { (TopicPartition(row.text(0), Int(row.int(1))), row.int(2)) }

    /// Raises a partition's recorded offset to the one given, never lowers it (values:
    /// topic, partition, offset).
    static let raiseTrackerOffset = """
        INSERT INTO tracker_offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition)
        DO UPDATE SET next_offset = excluded.next_offset WHERE tracker_offsets.next_offset < excluded.next_offset
        """

    /// Whether `settleTrackerStart` has run on this store.
    public func trackerStartSettled() throws -> Bool {
        try connection.scalar(Self.startSettled) != nil
    }

    static let startSettled = "SELECT 1 FROM tracker_marks WHERE name = 'start_settled'"

    /// Where the tracker starts on partitions its store never recorded, settled once, when
    /// the dispatcher first starts on this store (before its intake runs), and remembered
    /// (`tracker_marks`: `start_settled`). After it, a partition without a row in
    /// `tracker_offsets` is read from its start (`SagaTracker.startOffsets`).
    ///
    /// - A store new together with the intake's, on a log an earlier world wrote (a fresh
    ///   `--store` with an old `--data-dir` or cluster): it starts where the tracker's group
    ///   stands (`groupPositions`, written as rows), as every step's store does: orders
    ///   finished before are not in it, and one in flight then is tracked from its next event.
    /// - A tracker store that recorded nothing beside an intake that accepted orders lost its
    ///   history (`dispatcher.sqlite` deleted, its schema dropped): no row is written, so it is
    ///   filled again from the log's start.
    /// - A store an earlier version made, which recorded only the partitions it read: the
    ///   others start where the group stands, as they did.
    public func settleTrackerStart(groupPositions: [TopicPartition: Int64]) throws {
        let intakeAccepted = try intake.scalar("SELECT 1 FROM submitted LIMIT 1") != nil
        try connection.transaction { db in
            guard try db.scalar(Self.startSettled) == nil else { return }
            let recordedNothing = try db.scalar("SELECT 1 FROM tracker_offsets LIMIT 1") == nil
            if !(recordedNothing && intakeAccepted) {
                for (tp, offset) in groupPositions where offset > 0 {
                    try db.run("INSERT INTO tracker_offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) DO NOTHING",
                               [.text(tp.topic), .integer(Int64(tp.partition)), .integer(offset)])
                }
            }
            try db.run("INSERT INTO tracker_marks VALUES ('start_settled')")
        }
    }

    /// Orders not finished, per state (manual review included).
    public func openStateCounts() throws -> [String: Int] {
        Dictionary(uniqueKeysWithValues: try stateReader.query("SELECT o.state, COUNT(*) \(Self.openJoin) GROUP BY o.state") { ($0.text(0), Int($0.int(1))) })
    }

    /// Which orders a list shows.
    public enum Selection: Sendable, Equatable {
        /// Accepted and not yet finished or parked.
        case inFlight
        case manualReview
        /// In flight and past their step's budget at `now` (ms): the watchdog's view.
        case stuck(now: Int64, budgets: [OrderState: Int64])
    }

    /// One page of a list, in order id order, after the cursor (the last id of the page
    /// before): a walk of the open orders.
    public func orders(_ selection: Selection, after cursor: String?, limit: Int) throws -> (orders: [OrderRecord], next: String?) {
        let columns = "o.order_id, o.state, o.amount_cents, o.units, o.tier, o.priority, o.failed_step, o.error_class, o.error_message, o.created_at, o.updated_at, o.finished_at, o.recoveries"
        var sql = "SELECT \(columns) \(Self.openJoin) WHERE x.order_id > ?"
        var values: [SQLValue] = [.text(cursor ?? "")]
        switch selection {
        case .manualReview:
            sql += " AND o.state = 'manual_review'"
        case .inFlight:
            sql += " AND o.state NOT IN ('completed','compensated','manual_review')"
        case .stuck(let now, let budgets):
            let cases = budgets.sorted { $0.key.rawValue < $1.key.rawValue }
            sql += " AND o.state NOT IN ('completed','compensated','manual_review') AND o.updated_at < CASE o.state " + cases.map { _ in "WHEN ? THEN ? " }.joined() + "ELSE 0 END"
            for (state, budget) in cases { values += [.text(state.rawValue), .integer(now - budget)] }
        }
        sql += " ORDER BY x.order_id LIMIT ?"
        values.append(.integer(Int64(limit + 1)))
        var rows = try stateReader.query(sql, values) { row in
            OrderRecord(
                orderID: row.text(0), state: row.text(1), amountCents: row.int(2), units: Int(row.int(3)), tier: row.text(4), priority: row.text(5),
                failedStep: row.optionalText(6), errorClass: row.optionalText(7), errorMessage: row.optionalText(8),
                createdAt: row.int(9), updatedAt: row.int(10), finishedAt: row.optionalInt(11), recoveries: Int(row.int(12)))
        }
        var next: String?
        if rows.count > limit {
            rows.removeLast()
            next = rows.last?.orderID
        }
        return (rows, next)
    }

    /// The alerts firing at the last in-process evaluation, for `stats` in another process.
    public func saveFiringAlerts(_ alerts: [ActiveAlert], evaluatedAt: Double) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let rows = try alerts.map { ($0.key, String(decoding: try encoder.encode($0), as: UTF8.self)) }
        try connection.transaction { db in
            try db.run("DELETE FROM firing_alerts")
            for (key, alert) in rows { try db.run("INSERT INTO firing_alerts VALUES (?, ?)", [.text(key), .text(alert)]) }
            try db.run(
                "INSERT INTO alert_evaluations VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET evaluated_at = excluded.evaluated_at", [.real(evaluatedAt)])
        }
    }

    /// What `saveFiringAlerts` last saved, and when.
    public func firingAlerts() throws -> (alerts: [ActiveAlert], evaluatedAt: Double?) {
        let alerts = try connection.query("SELECT alert FROM firing_alerts ORDER BY alert_key") { row in
            try JSONDecoder().decode(ActiveAlert.self, from: Data(row.text(0).utf8))
        }
        let at = try connection.query("SELECT evaluated_at FROM alert_evaluations WHERE id = 1") { $0.double(0) }.first
        return (alerts, at)
    }

    public func rejectionCount() throws -> Int {
        Int(try intake.scalar("SELECT COUNT(*) FROM rejections") ?? 0)
    }

}
