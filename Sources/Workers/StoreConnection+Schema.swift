import StoreDatabase

extension StoreConnection {
    /// Opens a step's store (a SQLite file in the store directory, or a schema of the
    /// PostgreSQL database) and, unless read-only, creates its tables.
    static func openStep(location: String, name: String, schema: String, readOnly: Bool, synchronous: String = "FULL") throws -> StoreConnection {
        let connection = try StoreConnection.open(location: location, name: name, readOnly: readOnly, synchronous: synchronous)
        if !readOnly { try connection.execute(schema) }
        return connection
    }
}
