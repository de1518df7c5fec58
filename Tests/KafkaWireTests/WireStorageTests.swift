@testable import Broker
import Foundation
@testable import KafkaWire
import Logging
@testable import Messaging
import TestSupport
import Testing

/// What the wire door does to batches: stores them byte for byte (compressed ones too),
/// recognises an idempotent producer's retries, refuses sequence gaps, deletes topics.
@Suite struct WireStorageTests {
    typealias Requests = MalformedRequestTests

    func openBroker(_ dir: String, options: WireRequestHandler.Options = .init()) async throws -> (WireRequestHandler, EmbeddedBroker) {
        var configuration = EmbeddedBroker.Configuration(dataDirectory: dir)
        configuration.fsync = .batch
        let broker = try EmbeddedBroker(configuration: configuration, logger: Logger(label: "wire-test"))
        if (try? await broker.describeTopic("orders")) == nil { try await broker.createTopic(TopicSpec(name: "orders", partitions: 2)) }
        var logger = Logger(label: "wire-test")
        logger.logLevel = .critical
        var options = options
        options.maxFetchWaitMilliseconds = 0
        return (WireRequestHandler(broker: broker, advertisedHost: "127.0.0.1", advertisedPort: 9092, options: options, logger: logger), broker)
    }

    /// A v2 batch as a client would send it: producer id/epoch/sequence and attributes set,
    /// CRC-32C recomputed.
    static func batch(_ values: [String], producer: Int64 = -1, sequence: Int32 = -1, attributes: Int16 = 0, body: [UInt8]? = nil) -> [UInt8] {
        var bytes = RecordBatchCodec.encode(values.map { ProducerRecord(topic: "orders", partition: 0, key: nil, value: Array($0.utf8)) }, defaultTimestamp: 1_700_000_000_000)
        if let body {
            // A "compressed" payload: opaque bytes the broker must keep as they are.
            bytes = Array(bytes[..<RecordBatchHeader.size]) + body
            RecordBatchCodec.storeBigEndian(Int32(bytes.count - RecordBatchHeader.logOverhead), into: &bytes, at: 8)
        }
        RecordBatchCodec.storeBigEndian(attributes, into: &bytes, at: 21)
        RecordBatchCodec.storeBigEndian(producer, into: &bytes, at: 43)
        RecordBatchCodec.storeBigEndian(Int16(0), into: &bytes, at: 51)
        RecordBatchCodec.storeBigEndian(sequence, into: &bytes, at: 53)
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[21...])) }
        RecordBatchCodec.storeBigEndian(crc, into: &bytes, at: 17)
        return bytes
    }

    static func produce(_ batch: [UInt8], topic: String = "orders", partition: Int32 = 0) -> [UInt8] {
        Requests.request(key: 0, version: 7) { w in
            w.string(nil); w.int16(-1); w.int32(5000)
            w.array([topic]) { w, t in
                w.string(t)
                w.array([partition]) { w, p in w.int32(p); w.nullableBytes(batch) }
            }
        }
    }

    /// (error code, base offset) of a one-partition Produce response.
    static func produced(_ response: [UInt8]?) throws -> (Int16, Int64) {
        var r = WireReader(try #require(response))
        _ = try r.int32(); _ = try r.arrayCount(); _ = try r.string(); _ = try r.arrayCount(); _ = try r.int32()
        return (try r.int16(), try r.int64())
    }

    @Test func batchesAreStoredAndServedByteForByteCompressedOnesToo() async throws {
        let temporary = TemporaryDirectory("wire-bytes")
        let dir = temporary.path
        let (handler, broker) = try await openBroker(dir)
        defer { broker.shutdown() }
        let plain = Self.batch(["a", "b"])
        let gzip = Self.batch(["c", "d", "e"], attributes: 1, body: Array(repeating: 0x5A, count: 37))
        #expect(try Self.produced(try await handler.respond(to: Self.produce(plain))) == (0, 0))
        #expect(try Self.produced(try await handler.respond(to: Self.produce(gzip))) == (0, 2))
        let stored = try broker.readBatches(topic: "orders", partition: 0, from: 0, maxBytes: 1 << 20)
        var expectedGzip = gzip
        RecordBatchCodec.patchBaseOffset(2, in: &expectedGzip)
        #expect(stored.bytes == plain + expectedGzip, "stored exactly as sent, only the base offset patched")
        #expect(stored.highWatermark == 5)
        let fetched = try #require(try await handler.respond(to: Requests.fetch("orders", partition: 0, offset: 0)))
        #expect(fetched.suffix(stored.bytes.count) == stored.bytes[...], "served exactly as stored")
    }

    @Test func compressedBatchesAreRefusedOnTopicsTheSagaReadsInProcess() async throws {
        let temporary = TemporaryDirectory("wire-inproc")
        let dir = temporary.path
        var options = WireRequestHandler.Options()
        options.inProcessTopics = ["orders"]
        let (handler, broker) = try await openBroker(dir, options: options)
        defer { broker.shutdown() }
        let gzip = Self.batch(["c"], attributes: 1, body: [1, 2, 3])
        #expect(try Self.produced(try await handler.respond(to: Self.produce(gzip))).0 == WireErrorCode.unsupportedCompressionType.rawValue)
        #expect(try await broker.describeTopic("orders").partitions[0].endOffset == 0)
        // A well-framed batch whose records do not fill it is refused too: in-process readers decode them.
        var lying = Self.batch(["x"])
        lying += [0, 0]
        RecordBatchCodec.storeBigEndian(Int32(lying.count - RecordBatchHeader.logOverhead), into: &lying, at: 8)
        let crc = lying.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[21...])) }
        RecordBatchCodec.storeBigEndian(crc, into: &lying, at: 17)
        #expect(try Self.produced(try await handler.respond(to: Self.produce(lying))).0 == WireErrorCode.corruptMessage.rawValue)
    }

    @Test func anIdempotentProducersRetryIsAppendedOnceEvenAfterARestart() async throws {
        let temporary = TemporaryDirectory("wire-idem")
        let dir = temporary.path
        do {
            let (handler, broker) = try await openBroker(dir)
            defer { broker.shutdown() }
            #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["a", "b"], producer: 9, sequence: 0)))) == (0, 0))
            #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["c"], producer: 9, sequence: 2)))) == (0, 2))
            // The retry of the first batch: acknowledged with its original offset, not appended.
            #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["a", "b"], producer: 9, sequence: 0)))) == (0, 0))
            // A gap: sequence 5 where 3 is next.
            #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["z"], producer: 9, sequence: 5)))).0 == WireErrorCode.outOfOrderSequenceNumber.rawValue)
            #expect(try await broker.describeTopic("orders").partitions[0].endOffset == 3)
        }
        // A new broker process knows nothing in memory; the retry is recognised from the log.
        let (handler, broker) = try await openBroker(dir)
        defer { broker.shutdown() }
        #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["c"], producer: 9, sequence: 2)))) == (0, 2))
        #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["d"], producer: 9, sequence: 3)))) == (0, 3))
        #expect(try await broker.describeTopic("orders").partitions[0].endOffset == 4)
        // A producer mid-stream naming a partition or topic that is not there: refused, not relearned.
        let unknown = WireErrorCode.unknownTopicOrPartition.rawValue
        #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["x"], producer: 9, sequence: 4), partition: 7))).0 == unknown)
        #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["x"], producer: 9, sequence: 4), partition: -1))).0 == unknown)
        #expect(try Self.produced(try await handler.respond(to: Self.produce(Self.batch(["x"], producer: 9, sequence: 4), topic: "nope"))).0 == unknown)
    }

    @Test func deleteTopicsRemovesFilesAndRefusesTheSagasOwnTopics() async throws {
        let temporary = TemporaryDirectory("wire-delete")
        let dir = temporary.path
        var options = WireRequestHandler.Options()
        options.inProcessTopics = ["orders"]
        do {
            let (handler, broker) = try await openBroker(dir, options: options)
            defer { broker.shutdown() }
            try await broker.createTopic(TopicSpec(name: "scratch", partitions: 3))
            let request = Requests.request(key: 20, version: 1) { w in
                w.array(["scratch", "orders", "missing"]) { $0.string($1) }
                w.int32(1000)
            }
            var r = WireReader(try #require(try await handler.respond(to: request)))
            _ = try r.int32(); _ = try r.int32()
            #expect(try r.arrayCount() == 3)
            var codes: [String: Int16] = [:]
            for _ in 0..<3 { codes[try r.string()] = try r.int16() }
            #expect(codes == ["scratch": 0, "orders": WireErrorCode.topicDeletionDisabled.rawValue, "missing": WireErrorCode.unknownTopicOrPartition.rawValue])
            #expect(!FileManager.default.fileExists(atPath: dir + "/scratch-0"))
        }
        // Gone for good: a restart does not bring it back.
        let (_, reopened) = try await openBroker(dir)
        defer { reopened.shutdown() }
        #expect(try await reopened.listTopics().map(\.name) == ["orders"])
    }

    @Test func metadataCreatesNamedTopicsOnlyWhenAutoCreationIsOn() async throws {
        let temporary = TemporaryDirectory("wire-auto")
        let dir = temporary.path
        func metadata(_ topic: String, allow: Bool) -> [UInt8] {
            Requests.request(key: 3, version: 4) { w in
                w.array([topic]) { $0.string($1) }
                w.bool(allow)
            }
        }
        do {
            let (off, broker) = try await openBroker(dir)
            defer { broker.shutdown() }
            _ = try await off.respond(to: metadata("wanted", allow: true))
            #expect(try await broker.listTopics().map(\.name) == ["orders"], "off by default")
        }
        var options = WireRequestHandler.Options()
        options.autoCreatePartitions = 3
        let (on, broker) = try await openBroker(dir, options: options)
        defer { broker.shutdown() }
        _ = try await on.respond(to: metadata("refused", allow: false))
        _ = try await on.respond(to: metadata("bad name!", allow: true))
        _ = try await on.respond(to: metadata("wanted", allow: true))
        #expect(try await broker.listTopics().map(\.name) == ["orders", "wanted"], "only a valid name, and only when the client allows it")
        #expect(try await broker.describeTopic("wanted").partitions.count == 3)
    }
}
