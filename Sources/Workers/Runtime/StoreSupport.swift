import StoreDatabase
import SagaDomain

/// Opens a step's store (a SQLite file in the store directory, or a PostgreSQL schema) and creates its schema.
enum StoreFile {
    static func open(location: String, name: String, schema: String, readOnly: Bool, synchronous: String = "FULL") throws -> StoreConnection {
        let connection = try StoreConnection.open(location: location, name: name, readOnly: readOnly, synchronous: synchronous)
        if !readOnly { try connection.execute(schema) }
        return connection
    }
}

extension InboundMessage {
    /// The `SQLValue` of the message's idempotency key, defaulting to `<order>:<step>`.
    func key(for step: SagaStep) -> String {
        idempotencyKey.isEmpty ? IdempotencyKey.step(orderID, step) : idempotencyKey
    }
}
