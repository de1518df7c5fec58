import CLibPQ
import Foundation

/// One libpq connection to the schema of one store. Used only under `StoreConnection`'s
/// lock, from blocking-I/O threads.
final class PostgresSession {
    let url: String
    let schema: String
    private var connection: OpaquePointer?
    private var setup: String
    /// Each statement text seen, with its PostgreSQL spelling and the names it is prepared
    /// under on this connection, per parameter types: one lookup per call finds both. A
    /// prepared statement is parsed and planned once instead of on every call, which on a
    /// small machine is CPU the workers and the server share. The names are forgotten on
    /// reconnect (prepared statements live in the server session).
    private var statements: [String: KnownStatement] = [:]
    private var preparedCount = 0
    /// Statements are prepared only up to this many per connection, and only when they take
    /// at most `preparedParameterLimit` parameters: multi-row statements built for a batch
    /// vary in length and would otherwise pile up in the server session.
    static let preparedLimit = 128
    static let preparedParameterLimit = 32
    /// Writers of one store take this lock first, so they are serialised as SQLite's
    /// `BEGIN IMMEDIATE` serialises them: the stores' read-then-write logic stays correct
    /// across processes and machines.
    let writerLockKey: Int64

    init(url: String, schema: String, readOnly: Bool, synchronous: String) throws {
        self.url = url
        self.schema = schema
        // lock_timeout mirrors SQLite's busy_timeout: a writer never waits forever.
        var setup = "SET client_min_messages = warning; SET lock_timeout = '10s'; SET search_path TO \"\(schema)\";"
        if readOnly { setup += " SET default_transaction_read_only = on;" }
        // `synchronous` is SQLite's notion (NORMAL: durable across a crash of our process).
        // PostgreSQL has no middle ground: with synchronous_commit off, a crash of the *server*
        // forgets commits it confirmed (the chaos harness's server restarts lost gateway
        // charges that way), so every store here commits synchronously.
        _ = synchronous
        self.setup = setup
        // FNV-1a of the schema name: a stable advisory-lock key per store.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in schema.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        writerLockKey = Int64(bitPattern: hash)
        try connect()
        // plan_cache_mode (PostgreSQL 12 and later): the prepared statements are small lookups
        // by key, and a plan made for one call's values can be wrong for the next: a batch's
        // `= ANY(array)` lookup planned as a sequential scan while a table was young compared
        // every row with every key (hundreds of ms per batch). The generic plan uses the index
        // whatever the values. Older servers keep their default, slower but still correct.
        if PQserverVersion(connection) >= 120000 { self.setup += " SET plan_cache_mode = force_generic_plan;" }
        if !readOnly {
            // Several processes may create the same store at once: one at a time.
            // (client_min_messages first: "schema already exists" is no news on stderr.)
            // Three round trips, not one string: statements sent together run as one
            // transaction, and the lock would be released before the schema committed, so
            // the next process would not see it and fail creating it again.
            try exec("SET client_min_messages = warning")
            try exec("SELECT pg_advisory_lock(7310)")
            do {
                try exec("CREATE SCHEMA IF NOT EXISTS \"\(schema)\"")
            } catch {
                _ = try? exec("SELECT pg_advisory_unlock(7310)")
                throw error
            }
            try exec("SELECT pg_advisory_unlock(7310)")
        }
        try exec(self.setup)
    }

    deinit { PQfinish(connection) }

    private func connect() throws {
        PQfinish(connection)
        if preparedCount > 0 {
            statements = statements.mapValues { KnownStatement(translated: $0.translated) }
            preparedCount = 0
        }
        connection = PQconnectdb(url)
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = errorMessage()
            PQfinish(connection)
            connection = nil
            throw StoreError(.unreachable, "cannot connect to PostgreSQL (\(Self.redacted(url))): \(message)")
        }
    }

    /// After a dropped connection the next call reconnects (the failed call is reported).
    private func reconnectIfBroken() {
        guard connection == nil || PQstatus(connection) != CONNECTION_OK else { return }
        if (try? connect()) != nil { _ = try? exec(setup) }
    }

    /// The code of a failed statement: its SQLSTATE class (23: integrity constraint; 40 and
    /// 55P03: serialization failure, deadlock, lock not available), or unreachable when the
    /// connection itself is gone.
    private func statementCode(_ result: OpaquePointer? = nil) -> StoreError.Code {
        guard let connection, PQstatus(connection) == CONNECTION_OK else { return .unreachable }
        guard let result, let field = PQresultErrorField(result, Int32(UInt8(ascii: "C"))) else { return .statementFailed }
        let state = String(cString: field)
        if state.hasPrefix("23") { return .constraint }
        if state.hasPrefix("40") || state == "55P03" { return .busy }
        // 53: insufficient resources (53100 disk full); 58: system or I/O error; 57P0x: the
        // server is shutting down or restarting; 08: the connection broke.
        if state.hasPrefix("53") { return .storageFull }
        if state.hasPrefix("58") { return .storageFailed }
        if state.hasPrefix("57P") || state.hasPrefix("08") { return .unreachable }
        return .statementFailed
    }

    /// The server's message, cut to 300 characters: it may quote a whole parameter (a batch's
    /// array of keys), which would flood a log line.
    private func errorMessage() -> String {
        guard let connection, let text = PQerrorMessage(connection) else { return "no connection" }
        let message = String(decoding: UnsafeRawBufferPointer(start: text, count: strlen(text)), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return message.count > 300 ? message.prefix(300) + "…" : message
    }

    static func redacted(_ url: String) -> String {
        // postgres://user:secret@host/db -> postgres://user:***@host/db
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://"), let colon = url[scheme.upperBound..<at].firstIndex(of: ":") else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }

    /// Statements without parameters (schema, session settings, transaction control).
    func exec(_ sql: String) throws {
        reconnectIfBroken()
        let result = PQexec(connection, PostgresDialect.translate(sql))
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            throw StoreError(statementCode(result), databaseCode: Int32(status.rawValue), "PostgreSQL \(schema): \(errorMessage()) in: \(sql.prefix(200))")
        }
    }

    /// One statement with parameters; the caller clears the result.
    func execute(_ sql: String, _ values: [SQLValue]) throws -> OpaquePointer {
        reconnectIfBroken()
        let seen = statements[sql]
        var known = seen ?? KnownStatement(translated: PostgresDialect.translate(sql))
        let translated = known.translated
        var types: [Oid] = []
        var texts: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        types.reserveCapacity(values.count)
        defer { for text in texts { free(text) } }
        for value in values {
            switch value {
            case .integer(let v):
                types.append(20)
                texts.append(strdup(String(v)))
                lengths.append(0)
                formats.append(0)
            case .real(let v):
                types.append(701)
                texts.append(strdup("\(v)"))
                lengths.append(0)
                formats.append(0)
            case .text(let v):
                types.append(25)
                texts.append(strdup(v))
                lengths.append(0)
                formats.append(0)
            case .blob(let bytes):
                types.append(17)
                let copy = malloc(max(bytes.count, 1))!
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { copy.copyMemory(from: base, byteCount: raw.count) }
                }
                texts.append(copy.assumingMemoryBound(to: CChar.self))
                lengths.append(Int32(bytes.count))
                formats.append(1)
            case .null:
                types.append(0)
                texts.append(nil)
                lengths.append(0)
                formats.append(0)
            }
        }
        var name = known.preparedAs[types]
        if name == nil {
            // A new text, or new types for it: remember its spelling and any name it gets
            // (a statement not to be prepared is written back only when first seen).
            name = try prepare(&known, sql, types)
            if seen == nil || name != nil { statements[sql] = known }
        }
        let result = texts.withUnsafeBufferPointer { textPointers in
            textPointers.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                if let name {
                    PQexecPrepared(connection, name, Int32(values.count), values.baseAddress, lengths, formats, 0)
                } else {
                    PQexecParams(connection, translated, Int32(values.count), types, values.baseAddress, lengths, formats, 0)
                }
            }
        }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let message = errorMessage()
            let code = statementCode(result)
            PQclear(result)
            throw StoreError(code, databaseCode: Int32(status.rawValue), "PostgreSQL \(schema): \(message) in: \(sql.prefix(200))")
        }
        return result!
    }

    struct KnownStatement {
        let translated: String
        var preparedAs: [[Oid]: String] = [:]
    }

    /// Prepares `statement` for these parameter types and returns its name; nil for a
    /// statement that is not to be prepared (see `preparedLimit`).
    private func prepare(_ statement: inout KnownStatement, _ sql: String, _ types: [Oid]) throws -> String? {
        guard types.count <= Self.preparedParameterLimit, preparedCount < Self.preparedLimit else { return nil }
        let name = "s\(preparedCount)"
        let result = PQprepare(connection, name, statement.translated, Int32(types.count), types)
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else {
            throw StoreError(statementCode(result), databaseCode: Int32(PQresultStatus(result).rawValue), "PostgreSQL \(schema): \(errorMessage()) in: \(sql.prefix(200))")
        }
        statement.preparedAs[types] = name
        preparedCount += 1
        return name
    }
}
