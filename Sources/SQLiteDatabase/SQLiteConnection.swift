import CSQLite
import Synchronization

/// A value bound to or read from SQLite.
public enum SQLiteValue: Sendable, Hashable {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    case null
}

public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var message: String
    public var description: String { message }
}

/// One row of a result, read by column index.
public struct SQLiteRow {
    fileprivate let statement: OpaquePointer

    public func int(_ i: Int32) -> Int64 { sqlite3_column_int64(statement, i) }
    public func double(_ i: Int32) -> Double { sqlite3_column_double(statement, i) }
    public func isNull(_ i: Int32) -> Bool { sqlite3_column_type(statement, i) == SQLITE_NULL }
    public func text(_ i: Int32) -> String {
        guard let c = sqlite3_column_text(statement, i) else { return "" }
        return String(cString: c)
    }
    public func optionalText(_ i: Int32) -> String? { isNull(i) ? nil : text(i) }
    public func optionalInt(_ i: Int32) -> Int64? { isNull(i) ? nil : int(i) }
    public func blob(_ i: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, i))
        guard count > 0, let base = sqlite3_column_blob(statement, i) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }
}

/// A SQLite database file in WAL mode, one connection guarded by a lock, with a cache of
/// prepared statements. Writers group work in `transaction`; `synchronous=FULL` makes every
/// committed transaction durable, so a store's effects survive SIGKILL.
public final class SQLiteConnection: Sendable {
    /// Owned C handles: only touched while `lock` is held, freed in `deinit`.
    fileprivate final class Handles: @unchecked Sendable {
        var db: OpaquePointer?
        var statements: [String: OpaquePointer] = [:]
        deinit {
            for (_, statement) in statements { sqlite3_finalize(statement) }
            sqlite3_close_v2(db)
        }
    }

    public let path: String
    public let readOnly: Bool
    private let lock: Mutex<Handles>

    public init(path: String, readOnly: Bool = false, synchronous: String = "FULL") throws {
        self.path = path
        self.readOnly = readOnly
        let handles = Handles()
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let rc = sqlite3_open_v2(path, &handles.db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK else {
            let message = handles.db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            throw SQLiteError(code: rc, message: "cannot open \(path): \(message)")
        }
        lock = Mutex(handles)
        try execute("PRAGMA busy_timeout = 10000")
        if !readOnly {
            try execute("PRAGMA journal_mode = WAL")
            try execute("PRAGMA synchronous = \(synchronous)")
        }
    }

    /// Runs one or more statements without parameters.
    public func execute(_ sql: String) throws {
        try lock.withLock { handles in
            var error: UnsafeMutablePointer<CChar>?
            let rc = sqlite3_exec(handles.db, sql, nil, nil, &error)
            if rc != SQLITE_OK {
                let message = error.map { String(cString: $0) } ?? "error \(rc)"
                sqlite3_free(error)
                throw SQLiteError(code: rc, message: "\(message) in: \(sql.prefix(200))")
            }
        }
    }

    /// Runs `body` inside `BEGIN IMMEDIATE ... COMMIT` (rolled back if it throws).
    public func transaction<T: Sendable>(_ body: (Transaction) throws -> T) throws -> T {
        try lock.withLock { handles in
            let tx = Transaction(handles: handles, path: path)
            try tx.exec("BEGIN IMMEDIATE")
            do {
                let result = try body(tx)
                try tx.exec("COMMIT")
                return result
            } catch {
                try? tx.exec("ROLLBACK")
                throw error
            }
        }
    }

    /// Several statements under the connection's lock, without opening a transaction (reads).
    public func withConnection<T: Sendable>(_ body: (Transaction) throws -> T) throws -> T {
        try lock.withLock { handles in try body(Transaction(handles: handles, path: path)) }
    }

    /// A single statement outside an explicit transaction.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLiteValue] = []) throws -> Int {
        try lock.withLock { handles in try Transaction(handles: handles, path: path).run(sql, values) }
    }

    public func query<T: Sendable>(_ sql: String, _ values: [SQLiteValue] = [], _ row: (SQLiteRow) throws -> T) throws -> [T] {
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
            let rc = sqlite3_exec(handles.db, sql, nil, nil, nil)
            guard rc == SQLITE_OK else { throw error(rc, sql) }
        }

        private func error(_ rc: Int32, _ sql: String) -> SQLiteError {
            SQLiteError(code: rc, message: "\(path): \(String(cString: sqlite3_errmsg(handles.db))) in: \(sql.prefix(200))")
        }

        private func prepared(_ sql: String, _ values: [SQLiteValue]) throws -> OpaquePointer {
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
                case .text(let v): sqlite3_bind_text(statement, index, v, -1, SQLITE_TRANSIENT)
                case .blob(let v): v.withUnsafeBytes { _ = sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT) }
                case .null: sqlite3_bind_null(statement, index)
                }
            }
            return statement
        }

        /// Runs a statement; returns the number of rows it changed.
        @discardableResult
        public func run(_ sql: String, _ values: [SQLiteValue] = []) throws -> Int {
            let statement = try prepared(sql, values)
            // Reset at once, even after an error: a statement left active keeps its read
            // transaction open, and the connection would see an old snapshot from then on.
            defer { sqlite3_reset(statement) }
            var rc = sqlite3_step(statement)
            while rc == SQLITE_ROW { rc = sqlite3_step(statement) }
            guard rc == SQLITE_DONE else { throw error(rc, sql) }
            return Int(sqlite3_changes(handles.db))
        }

        public func query<T>(_ sql: String, _ values: [SQLiteValue] = [], _ row: (SQLiteRow) throws -> T) throws -> [T] {
            let statement = try prepared(sql, values)
            defer { sqlite3_reset(statement) }
            var rows: [T] = []
            while true {
                let rc = sqlite3_step(statement)
                if rc == SQLITE_DONE { break }
                guard rc == SQLITE_ROW else { throw error(rc, sql) }
                rows.append(try row(SQLiteRow(statement: statement)))
            }
            return rows
        }

        public func scalar(_ sql: String, _ values: [SQLiteValue] = []) throws -> Int64? {
            try query(sql, values) { $0.isNull(0) ? nil : $0.int(0) }.first ?? nil
        }
    }

    public func scalar(_ sql: String, _ values: [SQLiteValue] = []) throws -> Int64? {
        try query(sql, values) { $0.isNull(0) ? nil : $0.int(0) }.first ?? nil
    }
}

/// SQLite's "copy the bytes now" destructor, which the C macro spells as -1.
private let SQLITE_TRANSIENT = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
