import CLibPQ
import CSQLite
import Synchronization

/// Rows of one query read a page at a time, so a caller can walk a million-row table (or
/// several in step, as the conservation check merges stores sorted by order) in bounded
/// memory. SQLite steps one statement of its own; PostgreSQL fetches from a server-side
/// cursor. While a cursor is open its connection is reading: give it a connection of its own
/// (a read-only one, as `check` opens), and close the cursor when done.
public final class RowCursor<T> {
    private var fetch: (() throws -> [T])?
    private let finish: () -> Void
    private let pageSize: Int
    private var page: [T] = []
    private var index = 0
    /// A page shorter than `pageSize` was the last: SQLite would start the statement over
    /// if it were stepped again after its end.
    private var lastPageRead = false

    fileprivate init(pageSize: Int, fetch: @escaping () throws -> [T], finish: @escaping () -> Void) {
        self.pageSize = pageSize
        self.fetch = fetch
        self.finish = finish
    }

    /// The next row, or nil after the last.
    public func next() throws -> T? {
        if index == page.count {
            guard let fetch, !lastPageRead else {
                close()
                return nil
            }
            page = try fetch()
            index = 0
            lastPageRead = page.count < pageSize
            if page.isEmpty {
                close()
                return nil
            }
        }
        defer { index += 1 }
        return page[index]
    }

    public func close() {
        guard fetch != nil else { return }
        fetch = nil
        page = []
        index = 0
        finish()
    }

    deinit { close() }
}

extension StoreConnection {
    /// `ORDER BY column` in the bytes' order, as `OrderedRows` merges: SQLite's default
    /// (BINARY) collation, PostgreSQL's "C" (the database's own may sort by locale).
    public func orderedByBytes(_ column: String) -> String {
        (try? withHandles { $0.postgres != nil }) == true ? "ORDER BY \(column) COLLATE \"C\"" : "ORDER BY \(column)"
    }

    /// A cursor over `sql` (no parameters), `pageSize` rows in memory at a time.
    public func cursor<T>(_ sql: String, pageSize: Int = 10_000, _ row: @escaping (SQLRow) throws -> T) throws -> RowCursor<T> {
        precondition(pageSize > 0, "a cursor reads at least one row per page")
        return try withHandles { handles in
            if let postgres = handles.postgres {
                let name = "rows_\(UInt64.random(in: 0...UInt64.max))"
                // WITH HOLD: the cursor outlives the implicit transaction of its DECLARE.
                try postgres.exec("DECLARE \(name) NO SCROLL CURSOR WITH HOLD FOR \(sql)")
                return RowCursor(
                    pageSize: pageSize,
                    fetch: { [self] in
                        try withHandles { handles in
                            guard let postgres = handles.postgres else { return [] }
                            let result = try postgres.execute("FETCH FORWARD \(pageSize) FROM \(name)", [])
                            defer { PQclear(result) }
                            return try (0..<PQntuples(result)).map { try row(SQLRow(postgres: result, row: $0)) }
                        }
                    },
                    finish: { [self] in _ = try? withHandles { try $0.postgres?.exec("CLOSE \(name)") } })
            }
            var statement: OpaquePointer?
            let rc = sqlite3_prepare_v2(handles.db, sql, -1, &statement, nil)
            guard rc == SQLITE_OK, let statement else {
                throw StoreError(StoreError.sqlite(rc), databaseCode: rc, "\(path): \(String(cString: sqlite3_errmsg(handles.db))) in: \(sql.prefix(200))")
            }
            let owned = SendableStatement(statement)
            return RowCursor(
                pageSize: pageSize,
                fetch: { [self] in
                    try withHandles { handles in
                        var rows: [T] = []
                        while rows.count < pageSize {
                            let rc = sqlite3_step(owned.pointer)
                            if rc == SQLITE_DONE { break }
                            guard rc == SQLITE_ROW else {
                                throw StoreError(StoreError.sqlite(rc), databaseCode: rc, "\(path): \(String(cString: sqlite3_errmsg(handles.db))) in: \(sql.prefix(200))")
                            }
                            rows.append(try row(SQLRow(sqlite: owned.pointer)))
                        }
                        return rows
                    }
                },
                finish: { [self] in _ = try? withHandles { _ in sqlite3_finalize(owned.pointer) } })
        }
    }
}

private struct SendableStatement: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}
