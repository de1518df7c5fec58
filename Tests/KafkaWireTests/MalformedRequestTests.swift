@testable import Broker
import Foundation
@testable import KafkaWire
import Logging
@testable import Messaging
import TestSupport
import Testing

/// The request handler fed well-formed requests, then 100,000 random and mutated frames:
/// every frame is answered or refused (the connection would close), nothing crashes, and
/// the broker stays consistent and keeps answering.
@Suite struct MalformedRequestTests {
    static func request(key: Int16, version: Int16, correlation: Int32 = 7, body: (inout WireWriter) -> Void) -> [UInt8] {
        var w = WireWriter()
        w.int16(key); w.int16(version); w.int32(correlation); w.string("test")
        if key == 18 && version >= 3 { w.unsignedVarint(0) }
        body(&w)
        return w.bytes
    }

    static func produce(_ topic: String, partition: Int32, records: [ProducerRecord]) -> [UInt8] {
        let batch = RecordBatchCodec.encode(records, defaultTimestamp: 1_700_000_000_000)
        return request(key: 0, version: 7) { w in
            w.string(nil); w.int16(1); w.int32(5000)
            w.array([topic]) { w, t in
                w.string(t)
                w.array([partition]) { w, p in w.int32(p); w.nullableBytes(batch) }
            }
        }
    }

    static func fetch(_ topic: String, partition: Int32, offset: Int64) -> [UInt8] {
        request(key: 1, version: 11) { w in
            w.int32(-1); w.int32(0); w.int32(1); w.int32(1 << 20); w.int8(0); w.int32(0); w.int32(-1)
            w.array([topic]) { w, t in
                w.string(t)
                w.array([partition]) { w, p in w.int32(p); w.int32(-1); w.int64(offset); w.int64(-1); w.int32(1 << 20) }
            }
            w.int32(0); w.string("")
        }
    }

    static func metadata() -> [UInt8] { request(key: 3, version: 4) { w in w.int32(-1); w.bool(false) } }

    func handler(_ dir: String) async throws -> (WireRequestHandler, EmbeddedBroker) {
        let (broker, logger) = try quietBroker(dir)
        try await broker.createTopic(TopicSpec(name: "orders", partitions: 2))
        var options = WireRequestHandler.Options()
        options.maxFetchWaitMilliseconds = 0
        return (WireRequestHandler(broker: broker, advertisedHost: "127.0.0.1", advertisedPort: 9092, options: options, logger: logger), broker)
    }

    @Test func wellFormedRequestsRoundTrip() async throws {
        let temporary = TemporaryDirectory("wire")
        let dir = temporary.path
        let (handler, broker) = try await handler(dir)
        defer { broker.shutdown() }
        let records = (0..<3).map { ProducerRecord(topic: "orders", partition: 1, key: Array("k\($0)".utf8), value: Array("v\($0)".utf8), headers: [RecordHeader("h", "\($0)")]) }
        let produced = try #require(try await handler.respond(to: Self.produce("orders", partition: 1, records: records)))
        var r = WireReader(produced)
        #expect(try r.int32() == 7)
        #expect(try r.arrayCount() == 1)
        #expect(try r.string() == "orders")
        #expect(try r.arrayCount() == 1)
        #expect(try r.int32() == 1)
        #expect(try r.int16() == 0, "no error")
        #expect(try r.int64() == 0, "base offset")
        let stored = try await broker.read(topic: "orders", partition: 1, from: 0, maxRecords: 10)
        #expect(stored.map(\.valueString) == ["v0", "v1", "v2"])
        #expect(stored.map { $0.header("h") } == ["0", "1", "2"])
        // A batch whose CRC does not match is refused with CORRUPT_MESSAGE and appends nothing.
        var corrupt = Self.produce("orders", partition: 1, records: records)
        corrupt[corrupt.count - 3] ^= 0xFF
        let refused = try #require(try await handler.respond(to: corrupt))
        #expect(Array(refused[(refused.count - 4 - 8 - 8 - 8 - 2)..<(refused.count - 4 - 8 - 8 - 8)]) == [0, 2])
        #expect(try await broker.describeTopic("orders").partitions[1].endOffset == 3)
        // Fetch returns the records as a v2 batch with their offsets.
        let fetched = try #require(try await handler.respond(to: Self.fetch("orders", partition: 1, offset: 1)))
        #expect(fetched.count > 40)
        #expect(try await handler.respond(to: Self.metadata()) != nil)
    }

    @Test func createTopicsCreatesAndRefusesWithKafkasErrorCodes() async throws {
        let temporary = TemporaryDirectory("wire-create")
        let dir = temporary.path
        let (handler, broker) = try await handler(dir)
        defer { broker.shutdown() }
        let request = Self.request(key: 19, version: 4) { w in
            let topics: [(String, Int32, Int16)] = [("fresh", 4, 1), ("orders", 2, 1), ("bad name!", 1, 1), ("wide", 3, 3), ("none", 0, 1)]
            w.array(topics) { w, t in
                w.string(t.0); w.int32(t.1); w.int16(t.2)
                w.int32(0)  // assignments
                w.int32(0)  // configs
            }
            w.int32(1000); w.bool(false)
        }
        let response = try #require(try await handler.respond(to: request))
        var r = WireReader(response)
        #expect(try r.int32() == 7)
        #expect(try r.int32() == 0, "throttle")
        var codes: [String: Int16] = [:]
        for _ in 0..<(try r.arrayCount()) {
            let name = try r.string()
            codes[name] = try r.int16()
            _ = try r.nullableString()
        }
        #expect(codes == ["fresh": 0, "orders": 36, "bad name!": 17, "wide": 38, "none": 37])
        #expect(try await broker.describeTopic("fresh").partitions.count == 4)
        await #expect(throws: BrokerError.self) { try await broker.describeTopic("wide") }
    }

    @Test func aHundredThousandRandomAndMutatedFramesNeverBreakTheBroker() async throws {
        let temporary = TemporaryDirectory("wire-fuzz")
        let dir = temporary.path
        let (handler, broker) = try await handler(dir)
        defer { broker.shutdown() }
        let seeds = [
            Self.request(key: 18, version: 3) { _ in },
            Self.request(key: 18, version: 0) { _ in },
            Self.metadata(),
            Self.produce("orders", partition: 0, records: [ProducerRecord(topic: "orders", key: "k", value: "v")]),
            Self.fetch("orders", partition: 0, offset: 0),
            Self.request(key: 19, version: 1) { w in
                w.array(["made-by-fuzz"]) { w, t in w.string(t); w.int32(1); w.int16(1); w.int32(0); w.int32(0) }
                w.int32(100); w.bool(true)
            },
            Self.request(key: 2, version: 2) { w in
                w.int32(-1); w.int8(0)
                w.array(["orders"]) { w, t in w.string(t); w.array([Int32(0)]) { w, p in w.int32(p); w.int64(-2) } }
            },
        ]
        var generator = SystemRandomNumberGenerator()
        var answered = 0
        var refused = 0
        for i in 0..<100_000 {
            var frame: [UInt8]
            if i % 4 == 0 {
                frame = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                frame = seeds[i % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &generator) where !frame.isEmpty {
                    switch Int.random(in: 0...2, using: &generator) {
                    case 0: frame[Int.random(in: 0..<frame.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                    case 1: frame.removeLast(Int.random(in: 0...min(8, frame.count), using: &generator))
                    default: frame.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...frame.count, using: &generator))
                    }
                }
            }
            do {
                _ = try await handler.respond(to: frame)
                answered += 1
            } catch is WireError {
                refused += 1
            }
        }
        #expect(answered + refused == 100_000)
        #expect(answered > 1000 && refused > 1000, "answered \(answered), refused \(refused)")
        // Still consistent and answering: every stored record reads back.
        #expect(try await handler.respond(to: Self.metadata()) != nil)
        for p in try await broker.describeTopic("orders").partitions {
            let all = try await broker.read(topic: "orders", partition: p.partition, from: p.beginOffset, maxRecords: Int(p.endOffset - p.beginOffset) + 1)
            #expect(Int64(all.count) == p.endOffset - p.beginOffset)
        }
    }
}
