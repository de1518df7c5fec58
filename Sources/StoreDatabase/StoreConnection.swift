import CLibPQ
import CSQLite
import Foundation
import Synchronization

/// A value bound to or read from a store.
public enum SQLValue: Sendable, Hashable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null
}

/// A store failure. The code is extensible (a struct, as `BrokerError`'s is) so callers can
/// switch on what went wrong whichever database is behind the store; the database's own
/// result code is kept beside it.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// Whether the same call later can succeed (the server is back, the lock is free).
        public let isRetriable: Bool

        public init(name: String, isRetriable: Bool = false) {
            self.name = name
            self.isRetriable = isRetriable
        }

        public var description: String { name }

        /// The database server cannot be reached (PostgreSQL down, wrong address).
        public static let unreachable = Code(name: "unreachable", isRetriable: true)
        /// The store file cannot be opened (missing directory, permissions, not a database).
        public static let cannotOpen = Code(name: "cannot_open")
        /// Another connection holds the lock past the busy timeout.
        public static let busy = Code(name: "busy", isRetriable: true)
        /// A uniqueness or other constraint refused the write.
        public static let constraint = Code(name: "constraint")
        /// Any other failed statement.
        public static let statementFailed = Code(name: "statement_failed")
        /// The disk (or the server's) is full: writes fail until space is freed.
        public static let storageFull = Code(name: "storage_full", isRetriable: true)
        /// The storage under the database failed (an I/O error, a file system gone read-only).
        public static let storageFailed = Code(name: "storage_failed", isRetriable: true)
    }

    public var code: Code
    /// SQLite's result code or libpq's result status, when the database gave one.
    public var databaseCode: Int32?
    public var message: String
    public var description: String { message }

    public init(_ code: Code, databaseCode: Int32? = nil, _ message: String) {
        self.code = code
        self.databaseCode = databaseCode
        self.message = message
    }

    /// The code of an SQLite result code (its primary code: the low byte).
    static func sqlite(_ rc: Int32) -> Code {
        switch rc & 0xFF {
        case SQLITE_BUSY, SQLITE_LOCKED: .busy
        case SQLITE_CONSTRAINT: .constraint
        case SQLITE_CANTOPEN, SQLITE_NOTADB, SQLITE_PERM: .cannotOpen
        case SQLITE_FULL: .storageFull
        case SQLITE_IOERR, SQLITE_READONLY: .storageFailed
        default: .statementFailed
        }
    }
}

/// One row of a result, read by column index.
public struct SQLRow {
    fileprivate enum Source {
        case sqlite(OpaquePointer)
        /// A PostgreSQL result (text format) and the row's index in it.
        case postgres(OpaquePointer, Int32)
    }

    fileprivate let source: Source

    init(sqlite statement: OpaquePointer) { source = .sqlite(statement) }
    init(postgres result: OpaquePointer, row: Int32) { source = .postgres(result, row) }
    fileprivate init(source: Source) { self.source = source }

    public func isNull(_ i: Int32) -> Bool {
        switch source {
        case .sqlite(let statement): sqlite3_column_type(statement, i) == SQLITE_NULL
        case .postgres(let result, let row): PQgetisnull(result, row, i) != 0
        }
    }

    public func int(_ i: Int32) -> Int64 {
        switch source {
        case .sqlite(let statement): return sqlite3_column_int64(statement, i)
        case .postgres:
            let text = text(i)
            // Aggregates over BIGINT come back as NUMERIC: "12" or "12.0".
            return Int64(text) ?? Double(text).map { Int64($0) } ?? 0
        }
    }

    public func double(_ i: Int32) -> Double {
        switch source {
        case .sqlite(let statement): sqlite3_column_double(statement, i)
        case .postgres: Double(text(i)) ?? 0
        }
    }

    public func text(_ i: Int32) -> String {
        switch source {
        case .sqlite(let statement):
            guard let c = sqlite3_column_text(statement, i) else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: c, count: Int(sqlite3_column_bytes(statement, i))), as: UTF8.self)
        case .postgres(let result, let row):
            guard let c = PQgetvalue(result, row, i) else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: c, count: Int(PQgetlength(result, row, i))), as: UTF8.self)
        }
    }

    public func optionalText(_ i: Int32) -> String? { isNull(i) ? nil : text(i) }
    public func optionalInt(_ i: Int32) -> Int64? { isNull(i) ? nil : int(i) }

    public func blob(_ i: Int32) -> [UInt8] {
        switch source {
        case .sqlite(let statement):
            let count = Int(sqlite3_column_bytes(statement, i))
            guard count > 0, let base = sqlite3_column_blob(statement, i) else { return [] }
            return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
        case .postgres:
            // BYTEA in text format: "\x" then hex digits.
            let hex = Array(text(i).utf8.dropFirst(2))
            func nibble(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10 }
            return stride(from: 0, to: hex.count - 1, by: 2).map { nibble(hex[$0]) << 4 | nibble(hex[$0 + 1]) }
        }
    }
}

/// A store's database: a SQLite file in WAL mode (the single-machine default) or a schema in
/// a PostgreSQL database (instances of one step on several machines share it). One
/// connection guarded by a lock; writers group work in `transaction`. SQLite runs with
/// `synchronous=FULL` and PostgreSQL with synchronous commits, so a store's committed effects
/// survive SIGKILL.
public final class StoreConnection: Sendable {
    /// Owned handles: only touched while `lock` is held, freed in `deinit`.
    final class Handles: @unchecked Sendable {
        var db: OpaquePointer?
        var statements: [String: OpaquePointer] = [:]
        var postgres: PostgresSession?
        deinit {
            for (_, statement) in statements { sqlite3_finalize(statement) }
            if db != nil { sqlite3_close_v2(db) }
        }
    }

    /// The SQLite file, or the PostgreSQL URL and schema.
    public let path: String
    public let readOnly: Bool
    private let lock: Mutex<Handles>

    /// Opens store `name` at `location`: a directory of SQLite files (`<location>/<name>.sqlite`)
    /// or a `postgres://` / `postgresql://` URL (schema `<name>` in that database).
    public static func open(location: String, name: String, readOnly: Bool = false, synchronous: String = "FULL") throws -> StoreConnection {
        if isPostgres(location) {
            return try StoreConnection(postgres: location, schema: name, readOnly: readOnly, synchronous: synchronous)
        }
        return try StoreConnection(path: location + "/" + name + ".sqlite", readOnly: readOnly, synchronous: synchronous)
    }

    public static func isPostgres(_ location: String) -> Bool {
        location.hasPrefix("postgres://") || location.hasPrefix("postgresql://")
    }

    public init(path: String, readOnly: Bool = false, synchronous: String = "FULL") throws {
        self.path = path
        self.readOnly = readOnly
        let handles = Handles()
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let rc = sqlite3_open_v2(path, &handles.db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK else {
            let message = handles.db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            throw StoreError(.cannotOpen, databaseCode: rc, "cannot open \(path): \(message)")
        }
        lock = Mutex(handles)
        try execute("PRAGMA busy_timeout = 10000")
        if !readOnly {
            try switchToWriteAheadLog()
            try execute("PRAGMA synchronous = \(synchronous)")
        }
    }

    /// Switching a new file to WAL needs an exclusive lock, and SQLite returns `SQLITE_BUSY`
    /// at once, without calling the busy handler, when another connection is switching the
    /// same file (processes started together on a fresh data directory). So the switch is
    /// retried here for as long as `busy_timeout` would have waited.
    private func switchToWriteAheadLog() throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                return try execute("PRAGMA journal_mode = WAL")
            } catch let error as StoreError where error.code == .busy && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.002)
            }
        }
    }

    public init(postgres url: String, schema: String, readOnly: Bool = false, synchronous: String = "FULL") throws {
        path = PostgresSession.redacted(url) + "#" + schema
        self.readOnly = readOnly
        let handles = Handles()
        handles.postgres = try PostgresSession(url: url, schema: schema, readOnly: readOnly, synchronous: synchronous)
        lock = Mutex(handles)
    }

    /// Runs one or more statements without parameters (schemas). On PostgreSQL, schema
    /// changes of all stores are serialised, so processes starting together do not race.
    public func execute(_ sql: String) throws {
        try lock.withLock { handles in
            if let postgres = handles.postgres {
                try postgres.exec("SELECT pg_advisory_lock(7310);")
                defer { _ = try? postgres.exec("SELECT pg_advisory_unlock(7310);") }
                try postgres.exec(sql)
                return
            }
            var error: UnsafeMutablePointer<CChar>?
            let rc = sqlite3_exec(handles.db, sql, nil, nil, &error)
            if rc != SQLITE_OK {
                let message = error.map { String(cString: $0) } ?? "error \(rc)"
                sqlite3_free(error)
                throw StoreError(StoreError.sqlite(rc), databaseCode: rc, "\(message) in: \(sql.prefix(200))")
            }
        }
    }

    /// Runs `body` as one transaction (rolled back if it throws). Writers are serialised
    /// per store: SQLite's `BEGIN IMMEDIATE`, or a PostgreSQL advisory lock of the store.
    public func transaction<T: Sendable>(_ body: (Transaction) throws -> T) throws -> T {
        try lock.withLock { handles in
            let tx = Transaction(handles: handles, path: path)
            if let postgres = handles.postgres {
                try postgres.exec(readOnly ? "BEGIN" : "BEGIN; SELECT pg_advisory_xact_lock(\(postgres.writerLockKey));")
            } else {
                try tx.exec("BEGIN IMMEDIATE")
            }
            return try tx.completing(body)
        }
    }

    /// The raw handles under the connection's lock (for `RowCursor`).
    func withHandles<R>(_ body: (Handles) throws -> R) throws -> R {
        try lock.withLock { handles in try body(handles) }
    }

    /// Several reads under the connection's lock, without taking the store's writer lock. On
    /// SQLite they share one read transaction (`BEGIN`, deferred): one snapshot, and one lock
    /// of the write-ahead log's shared index for them all. Each statement on its own locks
    /// and unlocks that index (two `fcntl` calls), and a lookup of a batch's keys is a
    /// statement per key: that was 2 to 4 system calls per record in every step.
    public func withConnection<T: Sendable>(_ body: (Transaction) throws -> T) throws -> T {
        try lock.withLock { handles in
            let tx = Transaction(handles: handles, path: path)
            guard handles.postgres == nil else { return try body(tx) }
            try tx.exec("BEGIN")
            return try tx.completing(body)
        }
    }

    /// A single statement outside an explicit transaction.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLValue] = []) throws -> Int {
        try lock.withLock { handles in try Transaction(handles: handles, path: path).run(sql, values) }
    }

    public func query<T: Sendable>(_ sql: String, _ values: [SQLValue] = [], _ row: (SQLRow) throws -> T) throws -> [T] {
        try lock.withLock { handles in try Transaction(handles: handles, path: path).query(sql, values, row) }
    }

    /// Statements run inside `transaction` (or a single `run`/`query`); use it only within that body.
    public struct Transaction {
        fileprivate let handles: Handles
        fileprivate let path: String

        fileprivate init(handles: Handles, path: String) {
            self.handles = handles
            self.path = path
        }

        fileprivate func exec(_ sql: String) throws {
            if let postgres = handles.postgres { return try postgres.exec(sql) }
            let rc = sqlite3_exec(handles.db, sql, nil, nil, nil)
            guard rc == SQLITE_OK else { throw error(rc, sql) }
        }

        /// Runs `body` in the transaction begun already: commits, or rolls back if it throws.
        fileprivate func completing<T>(_ body: (Transaction) throws -> T) throws -> T {
            do {
                let result = try body(self)
                try exec("COMMIT")
                return result
            } catch {
                try? exec("ROLLBACK")
                throw error
            }
        }

        /// Removes every row of `table`. PostgreSQL's `TRUNCATE` starts the table again from
        /// its first page, so `ctid` (what `rowid` becomes there) keeps following the order
        /// of insertion; after a `DELETE`, a vacuum would let new rows fill freed space
        /// anywhere in the table. SQLite's `rowid` follows insertion either way.
        public func emptyTable(_ table: String) throws {
            try exec(handles.postgres != nil ? "TRUNCATE \(table)" : "DELETE FROM \(table)")
        }

        private func error(_ rc: Int32, _ sql: String) -> StoreError {
            StoreError(StoreError.sqlite(rc), databaseCode: rc, "\(path): \(String(cString: sqlite3_errmsg(handles.db))) in: \(sql.prefix(200))")
        }

        private func prepared(_ sql: String, _ values: [SQLValue]) throws -> OpaquePointer {
            let statement: OpaquePointer
            if let cached = handles.statements[sql] {
                statement = cached
            } else {
                var fresh: OpaquePointer?
                let rc = sqlite3_prepare_v2(handles.db, sql, -1, &fresh, nil)
                guard rc == SQLITE_OK, let fresh else { throw error(rc, sql) }
                handles.statements[sql] = fresh
                statement = fresh
            }
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            for (i, value) in values.enumerated() {
                let index = Int32(i + 1)
                switch value {
                case .integer(let v): sqlite3_bind_int64(statement, index, v)
                case .real(let v): sqlite3_bind_double(statement, index, v)
                case .text(var v):
                    // Bound from the string's own UTF-8 with its length: the implicit C-string
                    // conversion copies every small string (the inline ones) into an array first.
                    v.withUTF8 { utf8 in
                        let bytes = utf8.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
                        _ = sqlite3_bind_text(statement, index, bytes ?? emptyText, Int32(utf8.count), SQLITE_TRANSIENT)
                    }
                case .blob(let v): v.withUnsafeBytes { _ = sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT) }
                case .null: sqlite3_bind_null(statement, index)
                }
            }
            return statement
        }

        /// Runs a statement; returns the number of rows it changed.
        @discardableResult
        public func run(_ sql: String, _ values: [SQLValue] = []) throws -> Int {
            if let postgres = handles.postgres {
                let result = try postgres.execute(sql, values)
                defer { PQclear(result) }
                return Int(String(cString: PQcmdTuples(result))) ?? 0
            }
            let statement = try prepared(sql, values)
            // Reset at once, even after an error: a statement left active keeps its read
            // transaction open, and the connection would see an old snapshot from then on.
            defer { sqlite3_reset(statement) }
            var rc = sqlite3_step(statement)
            while rc == SQLITE_ROW { rc = sqlite3_step(statement) }
            guard rc == SQLITE_DONE else { throw error(rc, sql) }
            return Int(sqlite3_changes(handles.db))
        }

        public func query<T>(_ sql: String, _ values: [SQLValue] = [], _ row: (SQLRow) throws -> T) throws -> [T] {
            if let postgres = handles.postgres {
                let result = try postgres.execute(sql, values)
                defer { PQclear(result) }
                return try (0..<PQntuples(result)).map { try row(SQLRow(source: .postgres(result, $0))) }
            }
            let statement = try prepared(sql, values)
            defer { sqlite3_reset(statement) }
            var rows: [T] = []
            while true {
                let rc = sqlite3_step(statement)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else { throw error(rc, sql) }
                rows.append(try row(SQLRow(source: .sqlite(statement))))
            }
            return rows
        }

        public func scalar(_ sql: String, _ values: [SQLValue] = []) throws -> Int64? {
            try query(sql, values) { $0.isNull(0) ? nil : $0.int(0) }.first ?? nil
        }

        /// Runs `sql` for a set of keys: its one parameter, written `= ANY(?)`, stands for
        /// each of `keys`. A batch's lookups then cost PostgreSQL one statement (the keys go as
        /// one text array) instead of one round trip per key; SQLite, in process, runs the
        /// prepared statement once per key. Repeated keys are looked up once.
        public func query<T>(_ sql: String, anyOf keys: [String], _ row: (SQLRow) throws -> T) throws -> [T] {
            try StoreConnection.lookUp(sql, anyOf: keys, postgres: handles.postgres != nil) { try query($0, $1, row) }
        }

        static let anyMarker = "= ANY(?)"

        /// A PostgreSQL array literal of texts: every element double-quoted, with `"` and `\`
        /// escaped, so no key (quotes, commas, braces, the word NULL) can change its shape.
        static func textArrayLiteral(_ keys: ArraySlice<String>) -> String {
            var literal = "{"
            for (i, key) in keys.enumerated() {
                if i > 0 { literal += "," }
                literal += "\""
                for scalar in key.unicodeScalars {
                    if scalar == "\"" || scalar == "\\" { literal += "\\" }
                    literal.unicodeScalars.append(scalar)
                }
                literal += "\""
            }
            return literal + "}"
        }
    }

    public func scalar(_ sql: String, _ values: [SQLValue] = []) throws -> Int64? {
        try query(sql, values) { $0.isNull(0) ? nil : $0.int(0) }.first ?? nil
    }

    /// `Transaction.query(_:anyOf:_:)` outside a transaction: for readers, which must not take
    /// the store's writer lock.
    /// Each key's statement takes the lock on its own, so a writer on this connection (the
    /// intake's, when the watchdog looks up 10,000 accepted orders) waits for one statement
    /// at a time, not for the whole page.
    public func query<T: Sendable>(_ sql: String, anyOf keys: [String], _ row: (SQLRow) throws -> T) throws -> [T] {
        let postgres = lock.withLock { $0.postgres != nil }
        return try Self.lookUp(sql, anyOf: keys, postgres: postgres) { try query($0, $1, row) }
    }

    /// Runs `sql` (with one `= ANY(?)`) for each of `keys`: on PostgreSQL as one statement
    /// per 1,000 keys (a text array), on SQLite once per key.
    static func lookUp<T>(_ sql: String, anyOf keys: [String], postgres: Bool, run: (String, [SQLValue]) throws -> [T]) throws -> [T] {
        var seen = Set<String>()
        let distinct = keys.filter { seen.insert($0).inserted }
        guard !distinct.isEmpty else { return [] }
        let spellings = anyOfSpellings(sql)
        if postgres {
            let spelled = spellings.postgres
            var rows: [T] = []
            var start = 0
            while start < distinct.count {
                let end = min(distinct.count, start + 1000)
                rows += try run(spelled, [.text(Transaction.textArrayLiteral(distinct[start..<end]))])
                start = end
            }
            return rows
        }
        var rows: [T] = []
        for key in distinct { rows += try run(spellings.sqlite, [.text(key)]) }
        return rows
    }

    /// A `= ANY(?)` statement as each backend spells it, worked out once per statement: the
    /// lookups run for every batch of every step, and Foundation's replacement took 2.5 % of
    /// the CPU of a run of lone orders.
    private static func anyOfSpellings(_ sql: String) -> (sqlite: String, postgres: String) {
        if let known = anyOfSpelled.withLock({ $0[sql] }) { return known }
        precondition(sql.contains(Transaction.anyMarker), "query(_:anyOf:) needs `= ANY(?)` in: \(sql)")
        let spelled = (sqlite: sql.replacingOccurrences(of: Transaction.anyMarker, with: "= ?"),
                       postgres: sql.replacingOccurrences(of: Transaction.anyMarker, with: "= ANY(?::text[])"))
        anyOfSpelled.withLock { $0[sql] = spelled }
        return spelled
    }

    private static let anyOfSpelled = Mutex<[String: (sqlite: String, postgres: String)]>([:])
}

/// An empty text (a null pointer would bind NULL instead).
nonisolated(unsafe) private let emptyText: UnsafePointer<CChar> = {
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return UnsafePointer(pointer)
}()

/// SQLite's "copy the bytes now" destructor, which the C macro spells as -1.
private let SQLITE_TRANSIENT = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
