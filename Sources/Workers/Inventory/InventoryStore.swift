import Foundation
import SagaDomain
import SagaRuntime
import StoreDatabase

/// The warehouse's stock and reservations (`inventory.sqlite`). Stock is seeded once, from
/// the configuration's catalogue or a stock file, and `initial_units` is kept so `check` can
/// prove that units left the shelf only for completed orders.
public final class InventoryStore: Sendable {
    public let connection: StoreConnection

    static let schema = """
        CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, units INTEGER NOT NULL, initial_units INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS reservations (
            idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, units INTEGER NOT NULL,
            status TEXT NOT NULL, reserved_at INTEGER NOT NULL, released_at INTEGER);
        CREATE TABLE IF NOT EXISTS reservation_items (
            order_id TEXT NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL, PRIMARY KEY (order_id, sku));
        CREATE TABLE IF NOT EXISTS releases (idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, units INTEGER NOT NULL, released_at INTEGER NOT NULL);
        """

    public init(location: String, readOnly: Bool = false) throws {
        connection = try StoreConnection.openStep(location: location, name: "inventory", schema: Self.schema, readOnly: readOnly)
    }

    /// Seeds stock if the table is empty: `SKU-1`...`SKU-n`, or the units of a stock file.
    public func seedIfEmpty(skuCount: Int, units: Int, stockFile: [String: Int]? = nil) throws {
        try connection.transaction { db in
            guard try db.scalar("SELECT COUNT(*) FROM stock") == 0 else { return }
            let seed = stockFile ?? Dictionary(uniqueKeysWithValues: (1...skuCount).map { ("SKU-\($0)", units) })
            for (sku, n) in seed {
                try db.run("INSERT INTO stock VALUES (?, ?, ?)", [.text(sku), .integer(Int64(n)), .integer(Int64(n))])
            }
        }
    }

    /// Reads a stock file: a JSON object of SKU to units, e.g. `{"SKU-1": 100}`.
    public static func loadStockFile(_ path: String) throws -> [String: Int] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StepFailure("InvalidStockFile", "cannot read stock file \(path)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw StepFailure("InvalidStockFile", "\(path) must be a JSON object of SKU to units, such as {\"SKU-1\": 100}")
        }
        var stock: [String: Int] = [:]
        for (sku, value) in object {
            guard let units = value as? Int, units >= 0 else {
                throw StepFailure("InvalidStockFile", "\(path): units of \(sku) must be a non-negative whole number")
            }
            stock[sku] = units
        }
        return stock
    }

    /// An order's reservation: units taken off the shelf and `reserved` or `released`.
    public struct Reservation: Sendable, Equatable {
        public var units: Int64
        public var status: String
        public var isHeld: Bool { status == "reserved" }
    }

    /// Every order's reservation, for the conservation check.
    public func reservationsByOrder() throws -> RowCursor<(String, Reservation)> {
        try connection.cursor("SELECT order_id, units, status FROM reservations \(connection.orderedByBytes("order_id"))") { ($0.text(0), Reservation(units: $0.int(1), status: $0.text(2))) }
    }

    /// Units that reservations hold now.
    public func heldUnits() throws -> Int64 {
        try connection.scalar("SELECT COALESCE(SUM(units), 0) FROM reservations WHERE status = 'reserved'") ?? 0
    }

    /// Units off the shelf now: the sum over SKUs of initial minus current stock.
    public func unitsTaken() throws -> Int64 {
        try connection.query("SELECT COALESCE(SUM(initial_units - units), 0) FROM stock") { $0.int(0) }.first ?? 0
    }

    public func units(of sku: String) throws -> Int? {
        try connection.scalar("SELECT units FROM stock WHERE sku = ?", [.text(sku)]).map(Int.init)
    }

    /// Releases an order's reservation (its compensation), once; leaves a tombstone so a late
    /// duplicate request can never reserve for a compensated order.
    @discardableResult
    public func release(orderID: String, at: Int64) throws -> Int {
        try connection.transaction { db in
            let undoKey = IdempotencyKey.undo(orderID, .inventory)
            if let units = try db.scalar("SELECT units FROM releases WHERE idempotency_key = ?", [.text(undoKey)]) { return Int(units) }
            var released: Int64 = 0
            if try db.scalar("SELECT 1 FROM reservations WHERE idempotency_key = ? AND status = 'reserved'", [.text(IdempotencyKey.step(orderID, .inventory))]) != nil {
                let items = try db.query("SELECT sku, quantity FROM reservation_items WHERE order_id = ?", [.text(orderID)]) { ($0.text(0), $0.int(1)) }
                for (sku, quantity) in items {
                    try db.run("UPDATE stock SET units = units + ? WHERE sku = ?", [.integer(quantity), .text(sku)])
                    released += quantity
                }
                try db.run("UPDATE reservations SET status = 'released', released_at = ? WHERE idempotency_key = ?", [.integer(at), .text(IdempotencyKey.step(orderID, .inventory))])
            }
            try db.run("INSERT INTO releases VALUES (?, ?, ?, ?)", [.text(undoKey), .text(orderID), .integer(released), .integer(at)])
            return Int(released)
        }
    }
}
