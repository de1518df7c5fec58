import StoreDatabase
import SagaDomain

/// Shipments prepared per order and their cancellations (`shipping.sqlite`).
public final class ShippingStore: Sendable {
    public let connection: StoreConnection

    static let schema = """
        CREATE TABLE IF NOT EXISTS shipments (
            idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, tracking TEXT NOT NULL,
            status TEXT NOT NULL, prepared_at INTEGER NOT NULL, cancelled_at INTEGER);
        CREATE TABLE IF NOT EXISTS cancellations (idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, cancelled_at INTEGER NOT NULL);
        """

    public init(location: String, readOnly: Bool = false) throws {
        connection = try StoreConnection.openStep(location: location, name: "shipping", schema: Self.schema, readOnly: readOnly)
    }

    /// Every order's shipment status (`prepared` or `cancelled`), for the conservation check.
    public func shipmentStatusByOrder() throws -> RowCursor<(String, String)> {
        try connection.cursor("SELECT order_id, status FROM shipments \(connection.orderedByBytes("order_id"))") { ($0.text(0), $0.text(1)) }
    }

    /// Cancels an order's shipment (its compensation), once, leaving a tombstone.
    public func cancel(orderID: String, at: Int64) throws {
        try connection.transaction { db in
            let undoKey = IdempotencyKey.undo(orderID, .shipping)
            if try db.scalar("SELECT 1 FROM cancellations WHERE idempotency_key = ?", [.text(undoKey)]) != nil { return }
            try db.run("UPDATE shipments SET status = 'cancelled', cancelled_at = ? WHERE idempotency_key = ? AND status = 'prepared'", [.integer(at), .text(IdempotencyKey.step(orderID, .shipping))])
            try db.run("INSERT INTO cancellations VALUES (?, ?, ?)", [.text(undoKey), .text(orderID), .integer(at)])
        }
    }
}
