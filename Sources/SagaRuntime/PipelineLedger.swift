import Messaging

/// Bookkeeping of a worker's pipeline, as a plain state machine: which offsets are taken and
/// not yet flushed per partition (so offsets are committed only up to the first unfinished
/// one), and which orders have a message in progress (so one order is never handled by two
/// handlers at once; later messages of that order wait their turn).
public struct PipelineLedger: Sendable {
    public struct Entry: Sendable {
        public var tp: TopicPartition
        public var offset: Int64
        public var orderKey: String
    }

    /// One partition's offsets: taken in arrival order, the head the commit has reached, and
    /// those flushed ahead of an earlier unfinished one. Kept together so one lookup serves a
    /// message (the hash of a topic name is not free at a million messages a minute).
    struct PartitionOffsets: Sendable {
        var pending: [Int64] = []
        var head = 0
        var flushedAhead: Set<Int64> = []
        var nextCommit: Int64?
        var lastCommitted: Int64?

        mutating func flushed(_ offset: Int64) {
            if head < pending.count, pending[head] == offset, flushedAhead.isEmpty {
                // In order: the usual case.
                nextCommit = offset + 1
                head += 1
            } else {
                flushedAhead.insert(offset)
                while head < pending.count, flushedAhead.remove(pending[head]) != nil {
                    nextCommit = pending[head] + 1
                    head += 1
                }
            }
            if head == pending.count {
                pending.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024 {
                pending.removeFirst(head)
                head = 0
            }
        }
    }

    private var partitions: [TopicPartition: PartitionOffsets] = [:]
    /// Orders with a message being handled, and the messages queued behind it.
    private var busyOrders: [String: [Int]] = [:]
    public private(set) var taken = 0

    public init() {}

    /// Registers a consumed message. Returns `true` when it may start now, `false` when it
    /// was queued behind another message of the same order (identified by `token`).
    public mutating func receive(_ entry: Entry, token: Int) -> Bool {
        receiveInTurn(entry.tp, entry.offset)
        if busyOrders[entry.orderKey] != nil {
            busyOrders[entry.orderKey]!.append(token)
            return false
        }
        busyOrders[entry.orderKey] = []
        return true
    }

    /// Registers a consumed message whose order needs no turn (its handler runs in line, so
    /// every message finishes before the next is received).
    public mutating func receiveInTurn(_ tp: TopicPartition, _ offset: Int64) {
        partitions[tp, default: PartitionOffsets()].pending.append(offset)
        taken += 1
    }

    /// The message's handling finished (its result will be flushed); returns the next queued
    /// message of the same order to start, if any.
    public mutating func finishHandling(orderKey: String) -> Int? {
        guard var queue = busyOrders[orderKey] else { return nil }
        if queue.isEmpty {
            busyOrders[orderKey] = nil
            return nil
        }
        let next = queue.removeFirst()
        busyOrders[orderKey] = queue
        return next
    }

    /// The message's outcome is durably published: its offset may be committed once every
    /// earlier offset of the partition is too.
    public mutating func flushed(_ tp: TopicPartition, _ offset: Int64) {
        taken -= 1
        partitions[tp]?.flushed(offset)
    }

    /// A message given back without an outcome (shutdown): it stays uncommitted.
    public mutating func abandoned() {
        taken -= 1
    }

    /// Offsets that advanced since the last call: safe to commit.
    public mutating func takeCommittable() -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for (tp, offsets) in partitions {
            guard let next = offsets.nextCommit, offsets.lastCommitted != next else { continue }
            result[tp] = next
            partitions[tp]!.lastCommitted = next
        }
        return result
    }

    /// Forgets partitions that moved to another member.
    public mutating func revoke(_ partitions: Set<TopicPartition>) {
        for tp in partitions { self.partitions[tp] = nil }
    }
}
