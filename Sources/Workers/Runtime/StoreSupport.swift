import SQLiteDatabase
import SagaDomain

/// Opens a step's SQLite store in the data directory and creates its schema.
enum StoreFile {
    static func open(directory: String, name: String, schema: String, readOnly: Bool, synchronous: String = "FULL") throws -> SQLiteConnection {
        let connection = try SQLiteConnection(path: directory + "/" + name + ".sqlite", readOnly: readOnly, synchronous: synchronous)
        if !readOnly { try connection.execute(schema) }
        return connection
    }
}

extension InboundMessage {
    /// The `SQLiteValue` of the message's idempotency key, defaulting to `<order>:<step>`.
    func key(for step: SagaStep) -> String {
        idempotencyKey.isEmpty ? IdempotencyKey.step(orderID, step) : idempotencyKey
    }
}
