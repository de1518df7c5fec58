import StoreDatabase
import SagaDomain

/// The payment step's own record of what it charged and refunded (`payments.sqlite`).
public final class PaymentStore: Sendable {
    public let connection: StoreConnection

    static let schema = """
        CREATE TABLE IF NOT EXISTS charges (
            idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount_cents INTEGER NOT NULL,
            currency TEXT NOT NULL, reference TEXT NOT NULL, charged_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS refunds (
            idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount_cents INTEGER NOT NULL,
            reference TEXT NOT NULL, refunded_at INTEGER NOT NULL);
        """

    public init(location: String, readOnly: Bool = false) throws {
        connection = try StoreConnection.openStep(location: location, name: "payments", schema: Self.schema, readOnly: readOnly)
    }

    public func isRefunded(orderID: String) throws -> Bool {
        try connection.scalar("SELECT 1 FROM refunds WHERE idempotency_key = ?", [.text(IdempotencyKey.undo(orderID, .payment))]) != nil
    }

    /// Records a refund (or its tombstone when nothing was charged), once.
    public func recordRefund(orderID: String, receipt: GatewayReceipt, at: Int64) throws {
        try connection.run(
            "INSERT OR IGNORE INTO refunds VALUES (?, ?, ?, ?, ?)",
            [.text(IdempotencyKey.undo(orderID, .payment)), .text(orderID), .integer(receipt.amountCents), .text(receipt.reference), .integer(at)])
    }
}
