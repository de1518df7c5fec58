import Foundation
import Testing
@testable import SagaDomain

/// The fuzzer's inputs, replayed in the ordinary suite so a crash it once found cannot come
/// back unnoticed between fuzzing runs: every file in Fuzz/Regressions/FuzzOrderValidator
/// (each a crash the fuzzer or a user found) and the seed corpus. Each must be answered with
/// an order or a rejection, and an accepted order must read back from its canonical JSON
/// with the same identity and amount (what the fuzz target asserts too).
@Suite struct FuzzInputReplayTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ folder: String) throws -> [(name: String, bytes: [UInt8])] {
        let directory = fuzzDirectory.appendingPathComponent(folder)
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().map {
            ($0, Array(try Data(contentsOf: directory.appendingPathComponent($0))))
        }
    }

    @Test func everyRecordedCrashInputIsAnsweredAndTheSeedsAreAccepted() throws {
        let regressions = try Self.inputs("Regressions/FuzzOrderValidator")
        let seeds = try Self.inputs("Corpus/FuzzOrderValidator")
        #expect(regressions.count >= 3, "the crashes found so far are kept")
        #expect(!seeds.isEmpty)
        let validator = OrderValidator()
        for (name, bytes) in regressions + seeds {
            switch validator.validate(bytes) {
            case .success(let order):
                let again = validator.validate(order.canonicalJSON())
                guard case .success(let reread) = again else {
                    Issue.record("\(name): its canonical JSON is rejected: \(again)")
                    continue
                }
                #expect(reread.orderID == order.orderID, "\(name)")
                #expect(reread.amountCents == order.amountCents, "\(name)")
            case .failure(let rejection):
                #expect(!rejection.message.isEmpty, "\(name): a rejection says why")
            }
        }
        // The seeds that are objects are orders a producer would send: all of them valid.
        for (name, bytes) in seeds where bytes.first == UInt8(ascii: "{") {
            if case .failure(let rejection) = validator.validate(bytes) { Issue.record("seed \(name) rejected: \(rejection)") }
        }
    }
}
