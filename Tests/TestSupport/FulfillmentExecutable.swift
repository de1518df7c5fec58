import Foundation

public struct TestSupportError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

/// The `fulfillment` executable built next to the test bundle (`make test` builds it first):
/// the crash, scale-out and kcat tests run it as a child process.
public func fulfillmentExecutable() throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("fulfillment")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    let fallback = URL(fileURLWithPath: FileManager.default.currentDirectoryPath + "/.build/debug/fulfillment")
    if FileManager.default.isExecutableFile(atPath: fallback.path) { return fallback }
    throw TestSupportError("the fulfillment executable is not built: run `swift build` (or `make test`) first")
}
