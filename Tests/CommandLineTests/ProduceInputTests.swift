import Foundation
import Messaging
import SagaDomain
import Testing
@testable import fulfillment

/// `produce` streams its input in chunks; whatever the chunk size, it must see exactly the
/// lines a whole-file split sees, in order, and key and route each one as before.
@Suite struct ProduceInputTests {
    /// The lines a whole-file reader would send: split on LF, trimmed of spaces, tabs and CR,
    /// blank lines dropped.
    static func expectedLines(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).compactMap { line in
            let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            guard let first = line.firstIndex(where: { !blank($0) }), let last = line.lastIndex(where: { !blank($0) }) else { return nil }
            return Array(line[first...last])
        }
    }

    static func readAll(_ path: String, chunkSize: Int) throws -> [[UInt8]] {
        let input = try #require(LineChunks(path: path, chunkSize: chunkSize))
        defer { input.close() }
        var lines: [[UInt8]] = []
        while let chunk = try input.next() {
            #expect(!chunk.isEmpty)
            lines += LineChunks.lineRanges(in: chunk).map { Array(chunk[$0]) }
        }
        #expect(input.fractionRead == 1)
        return lines
    }

    @Test func chunksOfAnySizeGiveTheSameLines() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab{}\" \t\r\n\n\u{e9}".utf8)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("produce-input-\(UInt64.random(in: 0...UInt64.max)).ndjson").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        for round in 0..<60 {
            // Lines from empty to several chunks long; the last may lack its newline.
            let length = Int.random(in: 0...400, using: &generator)
            var bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            if round % 3 == 0 { bytes += Array(repeating: UInt8(ascii: "x"), count: 50) + [UInt8(ascii: "\n")] }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            for chunkSize in [1, 2, 7, 64, 4096] {
                let lines = try Self.readAll(path, chunkSize: chunkSize)
                #expect(lines == Self.expectedLines(bytes), "round \(round), chunks of \(chunkSize)")
            }
        }
    }

    @Test func anEmptyFileHasNoLines() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("produce-empty-\(UInt64.random(in: 0...UInt64.max)).ndjson").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data().write(to: URL(fileURLWithPath: path))
        #expect(try Self.readAll(path, chunkSize: 16).isEmpty)
    }

    @Test func recordsAreKeyedAndRoutedPerLine() throws {
        let text = """
            {"order_id":"o-1","customer_tier":"standard","items":[{"sku":"A","quantity":1,"unit_price":5}]}
            {"order_id":"o-2","customer_tier":"vip"}
            not json at all
            {"order_id":"o-3","items":[{"sku":"A","quantity":10,"unit_price":900}]}
            """
        let chunk = Array(text.utf8)
        let lines = LineChunks.lineRanges(in: chunk)
        let topics = SagaConfiguration().topics
        let records = ProduceCommand.records(chunk, lines[...], topics: topics, vipAbove: 1000)
        #expect(records.map(\.topic) == [topics.orders, topics.ordersPriority, topics.orders, topics.ordersPriority])
        #expect(records.map { $0.key.map { String(decoding: $0, as: UTF8.self) } } == ["o-1", "o-2", nil, "o-3"])
        #expect(records[2].value == Array("not json at all".utf8))
    }
}
