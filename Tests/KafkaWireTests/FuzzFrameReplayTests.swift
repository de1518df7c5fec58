@testable import Broker
import Foundation
@testable import KafkaWire
import Logging
@testable import Messaging
import TestSupport
import Testing

/// The wire fuzzer's inputs replayed in the ordinary suite: every frame in
/// Fuzz/Regressions/FuzzWireRequests (crashes found, if any) and the seed corpus, each
/// answered or refused by the request handler, which keeps answering afterwards. The seeds
/// are real requests (ApiVersions, Metadata, FindCoordinator, ListOffsets, Fetch), so each
/// must get an answer whose correlation id is its own. A frame that parks (a JoinGroup for a
/// group whose other member never rejoins) is cancelled after 250 ms, as the fuzzer does.
@Suite struct FuzzFrameReplayTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func frames(_ folder: String) throws -> [(name: String, bytes: [UInt8])] {
        let directory = fuzzDirectory.appendingPathComponent(folder)
        guard FileManager.default.fileExists(atPath: directory.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().map {
            ($0, Array(try Data(contentsOf: directory.appendingPathComponent($0))))
        }
    }

    @Test func everyRecordedFrameIsAnsweredOrRefusedAndTheSeedsAreAnswered() async throws {
        let temporary = TemporaryDirectory("wire-replay")
        let dir = temporary.path
        let (broker, logger) = try quietBroker(dir, label: "wire-replay")
        defer { broker.shutdown() }
        try await broker.createTopic(TopicSpec(name: "t", partitions: 2))
        var options = WireRequestHandler.Options()
        options.maxFetchWaitMilliseconds = 0
        let handler = WireRequestHandler(broker: broker, advertisedHost: "127.0.0.1", advertisedPort: 9092, options: options, logger: logger)

        for (_, frame) in try Self.frames("Regressions/FuzzWireRequests") {
            // As the fuzzer does: a request still parked after 250 ms (a JoinGroup waiting
            // for the rest of its group) is cancelled, and must then let go.
            let work = Task { try? await handler.respond(to: frame, peer: "replay") }
            let watchdog = Task {
                try? await Task.sleep(for: .milliseconds(250))
                work.cancel()
            }
            _ = await work.value
            watchdog.cancel()
        }
        let seeds = try Self.frames("Corpus/FuzzWireRequests")
        #expect(seeds.count >= 5)
        for (name, frame) in seeds {
            var header = WireReader(frame)
            _ = try header.int16(); _ = try header.int16()
            let correlation = try header.int32()
            let answer = try await handler.respond(to: frame, peer: "replay")
            let response = try #require(answer, "\(name) gets an answer")
            var reader = WireReader(response)
            #expect(try reader.int32() == correlation, "\(name)")
        }
    }
}
