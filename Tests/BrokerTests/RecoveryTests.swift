@testable import Broker
import Foundation
@testable import Messaging
import TestSupport
import Testing

@Suite struct RecoveryTests {
    /// Writes records 0..<count to a one-partition topic and returns the log file's path and
    /// the byte position where the last batch starts.
    private func writeLog(_ dir: String, count: Int) async throws -> (path: String, lastBatchStart: Int, size: Int) {
        let broker = try openBroker(dir)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
        for i in 0..<count {
            _ = try await broker.produce([record("t", "key-\(i)", "value-\(i)", headers: [RecordHeader("step", "payment")], partition: 0)])
        }
        broker.shutdown()
        let path = dir + "/t-0/00000000000000000000.log"
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var position = 0
        var lastStart = 0
        while position < data.count {
            lastStart = position
            let header = try data.withUnsafeBytes { try RecordBatchHeader.parse(UnsafeRawBufferPointer(rebasing: $0[position...])) }
            position += header.totalSize
        }
        return (path, lastStart, data.count)
    }

    @Test func aTornTailAtEveryBytePositionIsCutToTheLastWholeRecord() async throws {
        let dir = TemporaryDirectory()
        let (path, lastStart, size) = try await writeLog(dir.path, count: 5)
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        for cut in lastStart..<size {
            try original.prefix(cut).write(to: URL(fileURLWithPath: path))
            let broker = try openBroker(dir.path)
            let records = try await readAll(broker, "t", 0)
            #expect(records.map(\.valueString) == (0..<4).map { "value-\($0)" }, "cut at byte \(cut)")
            #expect(try await broker.describeTopic("t").partitions[0].endOffset == 4)
            // The next append continues right after the last whole record.
            let meta = try await broker.produce(record("t", "k", "after-\(cut)", partition: 0))
            #expect(meta.offset == 4)
            broker.shutdown()
            let reopened = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            #expect(reopened > lastStart)
            try original.write(to: URL(fileURLWithPath: path))
        }
    }

    @Test func aCorruptByteInTheLastRecordIsTruncatedAndEarlierRecordsKept() async throws {
        let dir = TemporaryDirectory()
        let (path, lastStart, size) = try await writeLog(dir.path, count: 6)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[lastStart + (size - lastStart) / 2 + 5] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: path))
        let broker = try openBroker(dir.path)
        let records = try await readAll(broker, "t", 0)
        #expect(records.map(\.valueString) == (0..<5).map { "value-\($0)" })
        broker.shutdown()
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int == lastStart)
    }

    @Test func garbageAppendedAfterTheLastRecordIsTruncated() async throws {
        let dir = TemporaryDirectory()
        let (path, _, size) = try await writeLog(dir.path, count: 3)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        handle.seekToEndOfFile()
        handle.write(Data((0..<300).map { _ in UInt8.random(in: 0...255) }))
        try handle.close()
        let broker = try openBroker(dir.path)
        #expect(try await readAll(broker, "t", 0).count == 3)
        broker.shutdown()
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int == size)
    }

    @Test func readOnlyOpeningReadsADamagedLogWithoutRepairingIt() async throws {
        let dir = TemporaryDirectory()
        let (path, lastStart, size) = try await writeLog(dir.path, count: 4)
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        try original.prefix(lastStart + 3).write(to: URL(fileURLWithPath: path))
        let broker = try openBroker(dir.path, readOnly: true)
        #expect(try await readAll(broker, "t", 0).count == 3)
        await #expect(throws: BrokerError.self) { _ = try await broker.produce(record("t", "k", "v", partition: 0)) }
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int == lastStart + 3)
        _ = size
    }

    @Test func aTornCommittedOffsetEntryIsDroppedAndEarlierCommitsKept() async throws {
        let dir = TemporaryDirectory()
        do {
            let broker = try openBroker(dir.path)
            try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
            _ = try await broker.produce((0..<10).map { record("t", "k", "v\($0)", partition: 0) })
            let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: .init())
            _ = try await consumer.poll(maxRecords: 10, maxWait: .seconds(1))
            try await consumer.commit([TopicPartition("t", 0): 4])
            try await consumer.commit([TopicPartition("t", 0): 7])
            broker.shutdown()
        }
        let path = dir.path + "/consumer-offsets.log"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 3).write(to: URL(fileURLWithPath: path))
        let broker = try openBroker(dir.path)
        #expect(broker.committedOffset(group: "g", TopicPartition("t", 0)) == 4)
    }
}
