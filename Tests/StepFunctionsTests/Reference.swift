import Foundation
import TestSupport
import Testing

/// The test inputs: the seed's definition (the one our users start from) and the eleven AWS
/// definitions in shared/reference/asl, read where they are (never copied into the repository).
enum Reference {
    /// The seed's ASL definition, as the questions file gives it (one state per line here).
    static var seed: String { SharedReference.seedDefinition }

    /// `shared/reference/asl`, where `SharedReference` found it.
    static let folder: URL? = SharedReference.folder?.appendingPathComponent("asl")

    /// Whether the AWS definitions are here; the tests that read them are skipped otherwise,
    /// saying why (`SharedReference.missing`).
    static var available: Bool { folder != nil }

    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let names = [
        "travel-reservation-saga.json", "order-long-lived-transaction.json", "order-long-lived-transaction-jsonata.json",
        "checkout-callback-choice.json", "curbside-pickup-callbacks.json", "config-backup-nested-map.json",
        "emit-and-wait-heartbeat.json", "webhook-provider-callback.json", "idempotent-parallel-wait.json",
        "invalid-jsonata-querylanguage-in-states.json", "unsupported-jsonata-distributed-map.json",
    ]

    /// A reference definition's bytes; a clear failure when the folder is not there.
    static func bytes(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
        guard let url = folder?.appendingPathComponent(name), let data = FileManager.default.contents(atPath: url.path) else {
            Issue.record("the reference definition \(name) is missing: \(SharedReference.missing)", sourceLocation: sourceLocation)
            throw ReferenceMissing(path: name)
        }
        return Array(data)
    }

    struct ReferenceMissing: Error { var path: String }
}
