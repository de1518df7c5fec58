import StoreDatabase
import SagaDomain

/// The outbox of notifications sent (`notifications.sqlite`): per order exactly one
/// confirmation or one failure notice.
public final class NotificationStore: Sendable {
    public let connection: StoreConnection

    static let schema = """
        CREATE TABLE IF NOT EXISTS outbox (
            idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            email TEXT NOT NULL, sent_at INTEGER NOT NULL);
        """

    public init(location: String, readOnly: Bool = false) throws {
        connection = try StoreConnection.openStep(location: location, name: "notifications", schema: Self.schema, readOnly: readOnly)
    }

    /// Sends the failure notice unless the customer already got a notice for this order.
    /// Returns `true` when the order's notice is (now or already) the failure notice, `false`
    /// when the confirmation was sent first: the order completed.
    public func claimFailure(orderID: String, email: String, at: Int64) throws -> Bool {
        try connection.transaction { db in
            try db.run(
                "INSERT OR IGNORE INTO outbox VALUES (?, ?, 'failure', ?, ?)",
                [.text(IdempotencyKey.failureNotice(orderID)), .text(orderID), .text(email), .integer(at)])
            return try db.query("SELECT kind FROM outbox WHERE order_id = ?", [.text(orderID)]) { $0.text(0) }.first == "failure"
        }
    }

    /// The notice each order got (`confirmation` or `failure`), for the conservation check.
    public func noticeByOrder() throws -> RowCursor<(String, String)> {
        try connection.cursor("SELECT order_id, kind FROM outbox \(connection.orderedByBytes("order_id"))") { ($0.text(0), $0.text(1)) }
    }

    public func notice(orderID: String) throws -> String? {
        try connection.query("SELECT kind FROM outbox WHERE order_id = ?", [.text(orderID)]) { $0.text(0) }.first
    }
}
