@testable import Broker
@testable import KafkaWire
@testable import Messaging
import Testing

/// The idempotent producer's sequence bookkeeping, without a broker.
@Suite struct ProducerSequencesTests {
    let key = ProducerSequences.Key(producerID: 42, partition: TopicPartition("orders", 0))

    @Test func retriesOfTheLastFiveBatchesAreDuplicatesAndGapsAreRefused() {
        let sequences = ProducerSequences()
        var offset: Int64 = 0
        for batch in 0..<7 {
            let first = Int32(batch * 10)
            #expect(sequences.check(key, epoch: 0, firstSequence: first, lastSequence: first + 9) == .append)
            sequences.record(key, epoch: 0, batch: .init(firstSequence: first, lastSequence: first + 9, baseOffset: offset))
            offset += 10
        }
        // Batches 2-6 are remembered; 0 and 1 are not (only the last five are).
        #expect(sequences.check(key, epoch: 0, firstSequence: 60, lastSequence: 69) == .duplicate(baseOffset: 60))
        #expect(sequences.check(key, epoch: 0, firstSequence: 20, lastSequence: 29) == .duplicate(baseOffset: 20))
        guard case .refuse(.outOfOrderSequenceNumber, _) = sequences.check(key, epoch: 0, firstSequence: 0, lastSequence: 9) else {
            Issue.record("a batch older than the last five is out of order")
            return
        }
        guard case .refuse(.outOfOrderSequenceNumber, _) = sequences.check(key, epoch: 0, firstSequence: 80, lastSequence: 89) else {
            Issue.record("a gap (70-79 missing) is refused")
            return
        }
        #expect(sequences.check(key, epoch: 0, firstSequence: 70, lastSequence: 79) == .append)
    }

    @Test func epochsFenceOldProducersAndRestartSequences() {
        let sequences = ProducerSequences()
        sequences.record(key, epoch: 1, batch: .init(firstSequence: 0, lastSequence: 4, baseOffset: 0))
        guard case .refuse(.invalidProducerEpoch, _) = sequences.check(key, epoch: 0, firstSequence: 5, lastSequence: 9) else {
            Issue.record("an older epoch is fenced")
            return
        }
        #expect(sequences.check(key, epoch: 2, firstSequence: 0, lastSequence: 3) == .append)
        guard case .refuse(.outOfOrderSequenceNumber, _) = sequences.check(key, epoch: 2, firstSequence: 7, lastSequence: 9) else {
            Issue.record("a new epoch starts at 0")
            return
        }
    }

    @Test func stateIsRelearnedFromTheLogsBatchHeadersAfterARestart() {
        let sequences = ProducerSequences()
        func header(producer: Int64, sequence: Int32, offset: Int64) -> RecordBatchHeader {
            RecordBatchHeader(
                baseOffset: offset, batchLength: 49, partitionLeaderEpoch: 0, magic: 2, crc: 0, attributes: 0, lastOffsetDelta: 2,
                firstTimestamp: 0, maxTimestamp: 0, producerId: producer, producerEpoch: 0, baseSequence: sequence, recordCount: 3)
        }
        sequences.seed(key, from: [header(producer: 42, sequence: 0, offset: 0), header(producer: 7, sequence: 0, offset: 3), header(producer: 42, sequence: 3, offset: 6)])
        #expect(sequences.check(key, epoch: 0, firstSequence: 3, lastSequence: 5) == .duplicate(baseOffset: 6))
        #expect(sequences.check(key, epoch: 0, firstSequence: 6, lastSequence: 8) == .append)
        #expect(sequences.newProducerID() != sequences.newProducerID())
    }
}
