import Broker
import Messaging
import Synchronization

/// The idempotent producer's bookkeeping, Kafka's way: per producer id and partition, the
/// epoch and the last five batches' sequence ranges with the offsets they got. A batch seen
/// again (a retry after a lost acknowledgement) is answered with its first offset and not
/// appended twice; a gap in the sequence is refused.
final class ProducerSequences: Sendable {
    struct Key: Hashable {
        var producerID: Int64
        var partition: TopicPartition
    }

    struct Batch: Equatable {
        var firstSequence: Int32
        var lastSequence: Int32
        var baseOffset: Int64
    }

    struct Entry {
        var epoch: Int16
        var recent: [Batch] = []
    }

    enum Verdict: Equatable {
        case append
        case duplicate(baseOffset: Int64)
        case refuse(WireErrorCode, String)
    }

    static let remembered = 5

    private let entries = Mutex<[Key: Entry]>([:])
    /// Ids are unique across restarts: milliseconds since 1970 times 4096, plus a counter.
    private let nextID: Atomic<Int64>

    init(now: Int64 = UnixClock.nowMillis()) {
        nextID = Atomic(now << 12)
    }

    func newProducerID() -> Int64 { nextID.add(1, ordering: .relaxed).newValue }

    func isKnown(_ key: Key) -> Bool { entries.withLock { $0[key] != nil } }

    /// Seeds a partition's state from batches read back from its log (after a restart).
    func seed(_ key: Key, from headers: [RecordBatchHeader]) {
        entries.withLock { entries in
            guard entries[key] == nil else { return }
            var entry: Entry?
            for header in headers where header.producerId == key.producerID {
                if entry == nil || header.producerEpoch > entry!.epoch { entry = Entry(epoch: header.producerEpoch) }
                entry!.recent.append(Batch(firstSequence: header.baseSequence, lastSequence: Self.lastSequence(header), baseOffset: header.baseOffset))
                entry!.recent = Array(entry!.recent.suffix(Self.remembered))
            }
            entries[key] = entry
        }
    }

    static func lastSequence(_ header: RecordBatchHeader) -> Int32 {
        Int32(truncatingIfNeeded: (Int64(header.baseSequence) + Int64(header.lastOffsetDelta)) & Int64(Int32.max))
    }

    /// What to do with a batch of an idempotent producer.
    func check(_ key: Key, epoch: Int16, firstSequence: Int32, lastSequence: Int32) -> Verdict {
        entries.withLock { entries in
            guard let entry = entries[key] else {
                // A producer new to this partition (or forgotten): any start is accepted.
                return .append
            }
            if epoch < entry.epoch {
                return .refuse(.invalidProducerEpoch, "producer epoch \(epoch) is older than \(entry.epoch)")
            }
            if epoch > entry.epoch {
                return firstSequence == 0 ? .append : .refuse(.outOfOrderSequenceNumber, "a new epoch must start at sequence 0, not \(firstSequence)")
            }
            if let seen = entry.recent.first(where: { $0.firstSequence == firstSequence && $0.lastSequence == lastSequence }) {
                return .duplicate(baseOffset: seen.baseOffset)
            }
            guard let last = entry.recent.last else { return .append }
            let expected = last.lastSequence == Int32.max ? 0 : last.lastSequence + 1
            guard firstSequence == expected else {
                return .refuse(.outOfOrderSequenceNumber, "sequence \(firstSequence) where \(expected) was expected")
            }
            return .append
        }
    }

    /// Records an appended batch.
    func record(_ key: Key, epoch: Int16, batch: Batch) {
        entries.withLock { entries in
            var entry = entries[key] ?? Entry(epoch: epoch)
            if epoch > entry.epoch { entry = Entry(epoch: epoch) }
            entry.recent.append(batch)
            if entry.recent.count > Self.remembered { entry.recent.removeFirst(entry.recent.count - Self.remembered) }
            entries[key] = entry
        }
    }
}
