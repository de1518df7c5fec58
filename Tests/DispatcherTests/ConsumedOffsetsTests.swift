import Messaging
import Testing
@testable import Dispatcher

/// The tracker's record of what it has recorded: a redelivered record is skipped, a new one
/// is kept, however a batch interleaves its partitions.
@Suite struct ConsumedOffsetsTests {
    static func record(_ topic: String, _ partition: Int, _ offset: Int64) -> ConsumerRecord {
        ConsumerRecord(topic: topic, partition: partition, offset: offset, timestamp: 0, key: nil, value: [], headers: [])
    }

    static func positions(_ records: [ConsumerRecord]) -> [String] {
        records.map { "\($0.topic)/\($0.partition)/\($0.offset)" }
    }

    @Test func aBatchWithNothingRecordedBeforeIsKeptWhole() {
        let consumed = ConsumedOffsets([])
        let batch = [Self.record("a", 0, 0), Self.record("a", 0, 1), Self.record("b", 0, 0)]
        #expect(Self.positions(consumed.filter(batch)) == Self.positions(batch))
    }

    @Test func redeliveredRecordsAreSkippedWhereverTheyAreInTheBatch() {
        // Recorded up to a/0 offset 5 and b/1 offset 2; a/1 never.
        let consumed = ConsumedOffsets([(TopicPartition("a", 0), 5), (TopicPartition("b", 1), 2)])
        let batch = [
            Self.record("a", 0, 4), Self.record("a", 0, 5),  // a run: stale, then new
            Self.record("a", 1, 0),                          // same topic, other partition
            Self.record("b", 1, 1), Self.record("b", 1, 2),
            Self.record("a", 0, 3),                          // a/0 again after other runs: stale
            Self.record("a", 0, 6),
        ]
        #expect(Self.positions(consumed.filter(batch)) == ["a/0/5", "a/1/0", "b/1/2", "a/0/6"])
        // A stale record first: the kept ones are the rest, in order.
        #expect(Self.positions(consumed.filter([Self.record("b", 1, 0), Self.record("b", 1, 3)])) == ["b/1/3"])
    }

    /// A partition handed back by a rebalance is read again from its last commit while the
    /// first copies are still in hand, so one batch can hold an offset twice: it is recorded
    /// once (the history table has no key that would refuse the second row).
    @Test func anOffsetTwiceInOneBatchIsKeptOnce() {
        let consumed = ConsumedOffsets([(TopicPartition("a", 0), 100)])
        let batch = [
            Self.record("a", 0, 100), Self.record("a", 0, 101),
            Self.record("b", 0, 0),
            Self.record("a", 0, 100), Self.record("a", 0, 101), Self.record("a", 0, 102),
        ]
        #expect(Self.positions(consumed.filter(batch)) == ["a/0/100", "a/0/101", "b/0/0", "a/0/102"])
        let oneRun = [Self.record("a", 1, 0), Self.record("a", 1, 1), Self.record("a", 1, 0), Self.record("a", 1, 1), Self.record("a", 1, 2)]
        #expect(Self.positions(consumed.filter(oneRun)) == ["a/1/0", "a/1/1", "a/1/2"])
    }

    @Test func nextIsTheOffsetAfterTheLastRecordOfEachPartition() {
        let batch = [
            Self.record("a", 0, 7), Self.record("a", 0, 8),
            Self.record("a", 1, 2),
            Self.record("a", 0, 3),  // an earlier offset after the run does not move it back
            Self.record("b", 0, 0),
            Self.record("a", 1, 9),
        ]
        #expect(ConsumedOffsets.next(batch) == [TopicPartition("a", 0): 9, TopicPartition("a", 1): 10, TopicPartition("b", 0): 1])
    }

    @Test func advancingNeverMovesAPartitionBack() {
        let consumed = ConsumedOffsets([(TopicPartition("a", 0), 10)])
        consumed.advance(to: [TopicPartition("a", 0): 4, TopicPartition("a", 1): 3])
        #expect(Self.positions(consumed.filter([Self.record("a", 0, 9), Self.record("a", 0, 10), Self.record("a", 1, 2), Self.record("a", 1, 3)]))
                == ["a/0/10", "a/1/3"])
    }
}
