import Foundation
import StoreDatabase

/// The two store backends every store test runs against.
public enum StoreBackend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite
    case postgres

    public var description: String { rawValue }

    /// The test PostgreSQL server's URL, which `make test` sets after starting a server on
    /// loopback (`scripts/test-postgres.sh`).
    public static let postgresVariable = "FULFILLMENT_TEST_POSTGRES"

    /// A fresh, empty store location: `directory` (created) for SQLite, or a new database on
    /// the test PostgreSQL server.
    public func freshLocation(directory: String) throws -> String {
        switch self {
        case .sqlite:
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            return directory
        case .postgres:
            guard let server = ProcessInfo.processInfo.environment[Self.postgresVariable], !server.isEmpty else {
                throw StoreError(.unreachable, "\(Self.postgresVariable) is not set: run the tests with `make test`, which starts a PostgreSQL server for them")
            }
            let name = "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
            let admin = try StoreConnection(postgres: server, schema: "public")
            try admin.execute("CREATE DATABASE \(name)")
            guard let slash = server.lastIndex(of: "/") else { throw StoreError(.cannotOpen, "\(Self.postgresVariable) must end in /DATABASE") }
            return server[..<slash] + "/" + name
        }
    }
}
