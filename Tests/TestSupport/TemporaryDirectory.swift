import Foundation

/// A fresh directory under the system temp folder, removed when the value goes away (keep it
/// in a local for the test's whole body).
public final class TemporaryDirectory {
    public let path: String

    public init(_ name: String = "test") {
        path = NSTemporaryDirectory() + "fulfillment-test-\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
