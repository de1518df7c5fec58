@testable import Broker
import Foundation
@testable import Messaging
import TestSupport
import Testing

@Suite struct PartitionStorageTests {
    @Test func theSparseIndexFindsTheBatchHoldingAnOffset() {
        var index = OffsetIndex()
        index.append(relativeOffset: 0, position: 0)
        index.append(relativeOffset: 40, position: 4100)
        index.append(relativeOffset: 95, position: 8300)
        #expect(index.floorPosition(for: 0) == (0, 0))
        #expect(index.floorPosition(for: 39) == (0, 0))
        #expect(index.floorPosition(for: 40) == (40, 4100))
        #expect(index.floorPosition(for: 94) == (40, 4100))
        #expect(index.floorPosition(for: 1000) == (95, 8300))
        let stored = (0..<index.count).flatMap { OffsetIndex.encodeEntry(relativeOffset: index.relativeOffsets[$0], position: index.positions[$0]) }
        let decoded = OffsetIndex.decode(stored, logSize: 9000)
        #expect(decoded?.positions == index.positions)
        #expect(OffsetIndex.decode(stored, logSize: 8000) == nil, "an entry past the end of the log means the index is stale")
        #expect(OffsetIndex.decode(Array(stored.dropLast()), logSize: 9000) == nil)
    }

    @Test func segmentsRollAtTheConfiguredSizeAndReadsCrossThem() async throws {
        let dir = TemporaryDirectory()
        let tp = TopicPartition("t", 0)
        do {
            let broker = try openBroker(dir.path, segmentBytes: 8 * 1024)
            try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
            for batch in 0..<50 {
                let records = (0..<10).map { i in record("t", "k", "value-\(batch * 10 + i)-" + String(repeating: "x", count: 100), partition: 0) }
                _ = try await broker.produce(records)
            }
            #expect(try broker.segmentCount(tp) > 5)
            broker.shutdown()
        }
        // Reopen: closed segments load their index, and every record reads back in order,
        // from the start and from offsets in the middle of batches and segments.
        let broker = try openBroker(dir.path, segmentBytes: 8 * 1024)
        let all = try await readAll(broker, "t", 0)
        #expect(all.count == 500)
        #expect(all.map(\.offset) == Array(0..<500))
        #expect(all.allSatisfy { $0.valueString.hasPrefix("value-\($0.offset)-") })
        for start in [Int64(1), 37, 123, 250, 499] {
            let chunk = try await broker.read(topic: "t", partition: 0, from: start, maxRecords: 3)
            #expect(chunk.first?.offset == start)
            #expect(chunk.count == min(3, Int(500 - start)))
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/t-0")
        #expect(files.contains("00000000000000000000.log"))
        #expect(files.contains("00000000000000000000.index"))
    }

    /// The wire door's reads hand out slices of the chunks read from disk. Whatever the
    /// offset and the byte limit (a batch larger than a chunk among them), they must be
    /// exactly the whole batches a fetch is owed: from the one holding the offset, at least
    /// one, and no more than the limit allows after it. A batch larger than a chunk used to
    /// be added past the limit.
    @Test func batchesReadInPartsAreTheWholeBatchesAFetchIsOwed() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        defer { broker.shutdown() }
        try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
        var next = 0
        for size in Array(repeating: 10, count: 30) + [200] + Array(repeating: 10, count: 30) {
            let records = (0..<size).map { _ in record("t", "k", "v-\(next)-" + String(repeating: "x", count: 100), partition: 0) }
            next += size
            _ = try await broker.produce(records)
        }
        // Every batch, in order, read from the files directly.
        let all = try broker.readBatches(topic: "t", partition: 0, from: 0, maxBytes: 1 << 30).bytes
        var batches: [(header: RecordBatchHeader, bytes: ArraySlice<UInt8>)] = []
        var position = 0
        while position < all.count {
            let header = try all.withUnsafeBytes { try RecordBatchHeader.parse(UnsafeRawBufferPointer(rebasing: $0[position...])) }
            batches.append((header, all[position..<(position + header.totalSize)]))
            position += header.totalSize
        }
        #expect(batches.count == 61 && batches.contains { $0.bytes.count > 8 * 1024 }, "one batch is larger than a chunk read")
        // Around the large batch, limits below and above it: it is taken whole from a read of
        // its own when it comes first, and left for the next fetch when it would pass the limit.
        for offset in Array(stride(from: Int64(0), to: Int64(next), by: 37)) + [289, 299, 300, Int64(next - 1)] {
            for maxBytes in [1, 1_500, 5_000, 25_000, 26_000, 30_000, 1 << 20] {
                let read = try broker.readBatches(topic: "t", partition: 0, from: offset, maxBytes: maxBytes)
                var owed: [UInt8] = []
                for batch in batches.drop(while: { $0.header.lastOffset < offset }) {
                    if !owed.isEmpty, owed.count + batch.bytes.count > maxBytes { break }
                    owed += batch.bytes
                }
                #expect(read.count == owed.count, "offset \(offset), at most \(maxBytes) bytes")
                #expect(read.bytes.elementsEqual(owed), "offset \(offset), at most \(maxBytes) bytes")
            }
        }
    }

    @Test func retentionBySizeDeletesTheOldestClosedSegments() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path, segmentBytes: 4 * 1024)
        try await broker.createTopic(TopicSpec(name: "r", partitions: 1, retentionBytes: 16 * 1024))
        for i in 0..<200 {
            _ = try await broker.produce([record("r", "k", "record-\(i)-" + String(repeating: "y", count: 150), partition: 0)])
        }
        broker.enforceRetention()
        let description = try await broker.describeTopic("r")
        let begin = description.partitions[0].beginOffset
        #expect(begin > 0, "old segments were deleted")
        #expect(description.partitions[0].endOffset == 200)
        let remaining = try await readAll(broker, "r", 0)
        #expect(remaining.first?.offset == begin)
        #expect(remaining.count == Int(200 - begin))
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/r-0").filter { $0.hasSuffix(".log") }
        #expect(onDisk.count == (try broker.segmentCount(TopicPartition("r", 0))))
        let sizes = try onDisk.map { try FileManager.default.attributesOfItem(atPath: dir.path + "/r-0/" + $0)[.size] as! Int }
        #expect(sizes.reduce(0, +) - sizes.max()! < 16 * 1024 + 4 * 1024)
    }

    @Test func retentionByAgeDeletesSegmentsWhoseNewestRecordIsTooOld() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path, segmentBytes: 2 * 1024)
        try await broker.createTopic(TopicSpec(name: "a", partitions: 1, retentionMilliseconds: 60_000))
        let old = UnixClock.nowMillis() - 3_600_000
        for i in 0..<40 {
            var r = record("a", "k", "old-\(i)-" + String(repeating: "z", count: 200), partition: 0)
            r.timestamp = old
            _ = try await broker.produce([r])
        }
        for i in 0..<5 { _ = try await broker.produce([record("a", "k", "new-\(i)", partition: 0)]) }
        // Retention runs when segments roll and on its timer; run it once more explicitly.
        broker.enforceRetention()
        #expect(try await broker.describeTopic("a").partitions[0].beginOffset > 0)
        let remaining = try await readAll(broker, "a", 0)
        #expect(remaining.contains { $0.valueString == "new-4" })
        #expect(remaining.count < 45)
    }

    @Test func offsetsAndDataSurviveACleanRestart() async throws {
        let dir = TemporaryDirectory()
        do {
            let broker = try openBroker(dir.path)
            try await broker.createTopic(TopicSpec(name: "orders", partitions: 4))
            _ = try await broker.produce((0..<100).map { record("orders", "o-\($0)", "v\($0)") })
            let consumer = try await broker.makeConsumer(group: "g", topics: ["orders"], configuration: .init())
            var seen = 0
            while seen < 40 {
                let records = try await consumer.poll(maxRecords: 40 - seen, maxWait: .seconds(1))
                seen += records.count
                try await consumer.commit(records: records)
            }
            broker.shutdown()
        }
        let broker = try openBroker(dir.path)
        let topics = try await broker.listTopics()
        #expect(topics.map(\.name) == ["orders"])
        #expect(topics[0].partitions.reduce(0) { $0 + $1.endOffset } == 100)
        let lag = try await broker.lag(group: "g")
        #expect(lag.reduce(0) { $0 + $1.lag } == 60)
    }
}
