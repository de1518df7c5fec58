import Foundation
import Synchronization
import StoreDatabase
import TestSupport
import Testing

/// The store connection on both backends: same statements, same results, same transactions.
@Suite struct StoreConnectionTests {
    /// Removed with the test (SQLite stores are directories under it).
    let temporary = TemporaryDirectory("store")

    static let schema = """
        CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, n INTEGER NOT NULL, data BLOB, ratio REAL, offset INTEGER);
        CREATE TABLE IF NOT EXISTS log (at INTEGER NOT NULL, what TEXT NOT NULL);
        """

    func open(_ backend: StoreBackend) throws -> StoreConnection {
        let location = try backend.freshLocation(directory: temporary.path + "/store-\(UUID().uuidString.prefix(8))")
        let connection = try StoreConnection.open(location: location, name: "items")
        try connection.execute(Self.schema)
        return connection
    }

    /// A batch's lookups in `withConnection` (a handler's recorded outcomes, its statements and
    /// its `query(_:anyOf:)`) read one snapshot on SQLite: one read transaction, not one per
    /// statement, so a writer committing meanwhile is not seen halfway through.
    @Test func aBatchOfLookupsReadsOneSnapshotOnSQLite() throws {
        let reader = try open(.sqlite)
        let writer = try StoreConnection(path: reader.path)
        try writer.run("INSERT INTO items (key, n) VALUES ('a', 1)")
        let seen = try reader.withConnection { db -> [Int64] in
            let before = try db.query("SELECT COUNT(*) FROM items") { $0.int(0) }[0]
            try writer.run("INSERT INTO items (key, n) VALUES ('b', 2)")
            let after = try db.query("SELECT COUNT(*) FROM items") { $0.int(0) }[0]
            let keys = try db.query("SELECT key FROM items WHERE key = ANY(?)", anyOf: ["a", "b"]) { $0.text(0) }
            return [before, after, Int64(keys.count)]
        }
        #expect(seen == [1, 1, 1])
        // Once it ends, the next read sees the writer's row, and the writer can write again.
        #expect(try reader.scalar("SELECT COUNT(*) FROM items") == 2)
        try writer.run("INSERT INTO items (key, n) VALUES ('c', 3)")
        #expect(try reader.query("SELECT key FROM items WHERE key = ANY(?)", anyOf: ["a", "b", "c", "z"]) { $0.text(0) }.sorted() == ["a", "b", "c"])
    }

    @Test(arguments: StoreBackend.allCases)
    func valuesRoundTripWithTheirTypes(_ backend: StoreBackend) throws {
        let db = try open(backend)
        let big: Int64 = 1_795_986_831_656  // milliseconds: beyond 32 bits
        try db.run("INSERT INTO items VALUES (?, ?, ?, ?, ?)", [.text("a'b?"), .integer(big), .blob([0, 1, 254, 255]), .real(0.25), .integer(7)])
        try db.run("INSERT INTO items VALUES (?, ?, ?, ?, ?)", [.text("n"), .integer(-3), .null, .null, .null])
        let rows = try db.query("SELECT key, n, data, ratio, offset FROM items ORDER BY key", []) {
            ($0.text(0), $0.int(1), $0.isNull(2) ? nil : $0.blob(2), $0.isNull(3) ? nil : $0.double(3), $0.optionalInt(4))
        }
        #expect(rows.count == 2)
        #expect(rows[0].0 == "a'b?" && rows[0].1 == big && rows[0].2 == [0, 1, 254, 255] && rows[0].3 == 0.25 && rows[0].4 == 7)
        #expect(rows[1].0 == "n" && rows[1].1 == -3 && rows[1].2 == nil && rows[1].3 == nil && rows[1].4 == nil)
        #expect(try db.scalar("SELECT SUM(n) FROM items") == big - 3)
        #expect(try db.scalar("SELECT COUNT(*) FROM items WHERE key = ?", [.text("missing")]) == 0)
    }

    /// Texts of every shape come back as they went in: the empty one as an empty text (not
    /// NULL), small ones (kept inline by Swift), long ones and non-ASCII ones.
    @Test(arguments: StoreBackend.allCases)
    func textsOfEveryShapeRoundTrip(_ backend: StoreBackend) throws {
        let db = try open(backend)
        let texts = ["", "n", "fifteen-bytes!!", "sixteen-bytes!!!", String(repeating: "long ", count: 100), "zürich-東京-🚚"]
        for (i, text) in texts.enumerated() {
            try db.run("INSERT INTO items (key, n) VALUES (?, ?)", [.text(text), .integer(Int64(i))])
        }
        let rows = try db.query("SELECT key, key IS NULL, n FROM items ORDER BY n", []) { ($0.text(0), $0.int(1), $0.int(2)) }
        #expect(rows.map(\.0) == texts)
        #expect(rows.allSatisfy { $0.1 == 0 }, "no text is stored as NULL")
        #expect(try db.scalar("SELECT n FROM items WHERE key = ?", [.text("")]) == 0)
    }

    /// Pages end exactly at, just before and just after a page boundary; the cursor returns
    /// every row once, in byte order on both backends (PostgreSQL's locale would put "B"
    /// after "a"), and stops (a finished SQLite statement stepped again starts over).
    @Test(arguments: StoreBackend.allCases)
    func cursorsReadEveryRowOnceInByteOrder(_ backend: StoreBackend) throws {
        let db = try open(backend)
        for count in [0, 1, 3, 4, 5, 9] {
            try db.run("DELETE FROM items")
            let keys = (0..<count).map { $0 % 2 == 0 ? "a\($0)" : "B\($0)" }
            for key in keys { try db.run("INSERT INTO items (key, n) VALUES (?, 1)", [.text(key)]) }
            let cursor = try db.cursor("SELECT key FROM items \(db.orderedByBytes("key"))", pageSize: 4) { $0.text(0) }
            var read: [String] = []
            while let key = try cursor.next() {
                read.append(key)
                #expect(read.count <= count, "\(count) rows: the cursor went past its end")
                if read.count > count { break }
            }
            #expect(read == keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }, "\(count) rows")
            #expect(try cursor.next() == nil)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func insertOrIgnoreAndUpsertBehaveAlike(_ backend: StoreBackend) throws {
        let db = try open(backend)
        #expect(try db.run("INSERT OR IGNORE INTO items (key, n) VALUES (?, ?)", [.text("k"), .integer(1)]) == 1)
        #expect(try db.run("INSERT OR IGNORE INTO items (key, n) VALUES (?, ?)", [.text("k"), .integer(2)]) == 0)
        try db.run("INSERT INTO items (key, n) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET n = excluded.n", [.text("k"), .integer(5)])
        #expect(try db.scalar("SELECT n FROM items WHERE key = 'k'") == 5)
        #expect(try db.run("UPDATE items SET n = n + 1 WHERE key = ?", [.text("k")]) == 1)
        #expect(try db.scalar("SELECT n FROM items WHERE key = 'k'") == 6)
    }

    @Test(arguments: StoreBackend.allCases)
    func aFailedTransactionLeavesNothingBehind(_ backend: StoreBackend) throws {
        let db = try open(backend)
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try db.transaction { tx in
                try tx.run("INSERT INTO log VALUES (?, ?)", [.integer(1), .text("first")])
                throw Boom()
            }
        }
        try db.transaction { tx in
            try tx.run("INSERT INTO log VALUES (?, ?)", [.integer(2), .text("second")])
            try tx.run("INSERT INTO log VALUES (?, ?)", [.integer(3), .text("third")])
        }
        #expect(try db.query("SELECT what FROM log ORDER BY at") { $0.text(0) } == ["second", "third"])
        // A constraint violation fails the statement and the transaction, not the connection.
        // Either database names it the same way.
        let refused = #expect(throws: StoreError.self) {
            try db.transaction { tx in
                try tx.run("INSERT INTO items (key, n) VALUES ('dup', 1)")
                try tx.run("INSERT INTO items (key, n) VALUES ('dup', 2)")
            }
        }
        #expect(refused?.code == .constraint, "\(String(describing: refused))")
        #expect(refused?.databaseCode != nil)
        #expect(try db.scalar("SELECT COUNT(*) FROM items") == 0)
    }

    @Test(arguments: StoreBackend.allCases)
    func writersOfOneStoreAreSerialisedAcrossConnections(_ backend: StoreBackend) async throws {
        // Two connections (two processes, in production) doing read-then-write increments:
        // serialised writers lose no update.
        let location = try backend.freshLocation(directory: temporary.path + "/store-\(UUID().uuidString.prefix(8))")
        let a = try StoreConnection.open(location: location, name: "counter")
        let b = try StoreConnection.open(location: location, name: "counter")
        try a.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        try a.run("INSERT INTO counter VALUES (1, 0)")
        await withTaskGroup(of: Void.self) { group in
            for connection in [a, b] {
                group.addTask {
                    for _ in 0..<100 {
                        try? connection.transaction { tx in
                            let n = try tx.scalar("SELECT n FROM counter WHERE id = 1") ?? 0
                            try tx.run("UPDATE counter SET n = ? WHERE id = 1", [.integer(n + 1)])
                        }
                    }
                }
            }
        }
        #expect(try a.scalar("SELECT n FROM counter WHERE id = 1") == 200)
    }

    /// Processes started together open the same new store at once (the scale-out benchmark
    /// starts eight workers on a fresh database): each must get it, none may fail on
    /// "schema already exists" from a creation that has not committed yet, nor on SQLite's
    /// "database is locked" from two connections switching one new file to WAL.
    @Test(arguments: StoreBackend.allCases)
    func connectionsOpeningANewStoreTogetherAllSucceed(_ backend: StoreBackend) throws {
        for round in 0..<16 {
            let location = try backend.freshLocation(directory: temporary.path + "/store-\(UUID().uuidString.prefix(8))")
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                do {
                    let connection = try StoreConnection.open(location: location, name: "together\(round)")
                    try connection.execute("CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY)")
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "round \(round): \(failures.withLock { $0 })")
        }
    }

    /// A batch's lookups in one statement: each key is found exactly when it is there,
    /// whatever it holds (quotes, backslashes, commas, braces, the word NULL), repeated keys
    /// once, and more keys than one statement carries.
    @Test(arguments: StoreBackend.allCases)
    func aLookupOfManyKeysFindsExactlyThePresentOnes(_ backend: StoreBackend) throws {
        let db = try open(backend)
        let hostile = ["a\"b", "back\\slash", "c,d", "{e}", "NULL", "", " f ", "é\u{1F600}", "'g'", "h\\\""]
        let present = hostile + (0..<2500).map { "k\($0)" }
        try db.transaction { tx in
            for (i, key) in present.enumerated() { try tx.run("INSERT INTO items (key, n) VALUES (?, ?)", [.text(key), .integer(Int64(i))]) }
        }
        let absent = ["a", "b", "NUL", "{}", "k2500", "k-1", "\"", "\\"]
        let asked = present + absent + hostile
        let found = try db.withConnection { tx in
            try tx.query("SELECT key, n FROM items WHERE key = ANY(?)", anyOf: asked) { ($0.text(0), $0.int(1)) }
        }
        #expect(found.count == present.count)
        #expect(Set(found.map(\.0)) == Set(present))
        #expect(found.allSatisfy { present[Int($0.1)] == $0.0 })
        #expect(try db.withConnection { try $0.query("SELECT key FROM items WHERE key = ANY(?)", anyOf: []) { $0.text(0) } }.isEmpty)
    }

    /// PostgreSQL statements are prepared once per session and parameter types, and prepared
    /// again after the session is lost: the call that meets the lost session fails (and is
    /// retried by its caller), the next one reconnects and gets the right rows.
    @Test func postgresPreparesAStatementOnceAndAgainAfterALostSession() throws {
        let location = try StoreBackend.postgres.freshLocation(directory: "")
        let db = try StoreConnection.open(location: location, name: "items")
        try db.execute(Self.schema)
        let lookup = "SELECT n FROM items WHERE key = ?"
        let preparedCount = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE ?"
        for n in 1...3 {
            try db.run("INSERT INTO items (key, n) VALUES (?, ?)", [.text("k\(n)"), .integer(Int64(n))])
            #expect(try db.scalar(lookup, [.text("k\(n)")]) == Int64(n))
        }
        #expect(try db.scalar(preparedCount, [.text("%FROM items WHERE key = $1%")]) == 1)
        #expect(try db.scalar(preparedCount, [.text("INSERT INTO items (key, n)%")]) == 1)
        // The same statement with a NULL where an integer was: prepared for those types too.
        try db.run("INSERT INTO items (key, n, offset) VALUES (?, ?, ?)", [.text("x"), .integer(9), .integer(1)])
        try db.run("INSERT INTO items (key, n, offset) VALUES (?, ?, ?)", [.text("y"), .integer(9), .null])
        #expect(try db.scalar("SELECT count(*) FROM items WHERE n = 9 AND offset IS NULL") == 1)

        let pid = try #require(try db.scalar("SELECT pg_backend_pid()"))
        let other = try StoreConnection.open(location: location, name: "other")
        #expect(try other.scalar("SELECT CASE WHEN pg_terminate_backend(?::int) THEN 1 ELSE 0 END", [.integer(pid)]) == 1)
        var lost = false
        for _ in 0..<50 where !lost {
            do { _ = try db.scalar(lookup, [.text("k1")]) } catch { lost = true }
            if !lost { Thread.sleep(forTimeInterval: 0.02) }
        }
        #expect(lost, "the terminated session was still answering")
        #expect(try db.scalar(lookup, [.text("k2")]) == 2)
        #expect(try db.scalar(preparedCount, [.text("%FROM items WHERE key = $1%")]) == 1)
        // The new session is set up as the first was: generic plans (see PostgresSession).
        #expect(try db.query("SELECT current_setting('plan_cache_mode')") { $0.text(0) } == ["force_generic_plan"])
    }

    /// A server that is not there, and a file that cannot be, fail with codes a caller can
    /// act on (retry the first, not the second).
    @Test func failuresToOpenSayWhich() throws {
        let down = #expect(throws: StoreError.self) { try StoreConnection(postgres: "postgres://nobody@127.0.0.1:1/x", schema: "s") }
        #expect(down?.code == .unreachable && down?.code.isRetriable == true, "\(String(describing: down))")
        let missing = #expect(throws: StoreError.self) { try StoreConnection(path: "/nonexistent-dir-\(getpid())/x.sqlite") }
        #expect(missing?.code == .cannotOpen && missing?.code.isRetriable == false, "\(String(describing: missing))")
    }

    @Test func theDialectRewritesOnlyWhatDiffers() {
        #expect(PostgresDialect.translate("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?") == "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2")
        #expect(PostgresDialect.translate("INSERT OR IGNORE INTO t VALUES (?, ?);") == "INSERT INTO t VALUES ($1, $2) ON CONFLICT DO NOTHING")
        #expect(PostgresDialect.translate("CREATE TABLE x (a INTEGER, b BLOB, c REAL, offset INTEGER, integer_count INTEGER)")
            == "CREATE TABLE x (a BIGINT, b BYTEA, c DOUBLE PRECISION, \"offset\" BIGINT, integer_count BIGINT)")
        #expect(PostgresDialect.translate("SELECT offset FROM h ORDER BY at, rowid") == "SELECT \"offset\" FROM h ORDER BY at, ctid")
        #expect(PostgresDialect.translate("CREATE VIEW IF NOT EXISTS v AS SELECT a FROM t") == "CREATE OR REPLACE VIEW v AS SELECT a FROM t")
    }
}
