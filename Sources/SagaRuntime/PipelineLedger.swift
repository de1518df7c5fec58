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
        /// Offsets flushed ahead of an earlier unfinished one, with how many copies. An offset
        /// can be taken twice: a partition handed back to this member by a rebalance is read
        /// again from its last commit while the first copies are still being handled.
        var flushedAhead: [Int64: Int] = [:]
        var nextCommit: Int64?
        var lastCommitted: Int64?

        mutating func flushed(_ offset: Int64) {
            if head < pending.count, pending[head] == offset, flushedAhead.isEmpty {
                // In order: the usual case.
                advance(past: offset)
                head += 1
            } else {
                flushedAhead[offset, default: 0] += 1
                while head < pending.count, let copies = flushedAhead[pending[head]] {
                    flushedAhead[pending[head]] = copies == 1 ? nil : copies - 1
                    advance(past: pending[head])
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

        /// Never backwards: the second copy of an offset finishes after the first let the
        /// commit pass it.
        private mutating func advance(past offset: Int64) {
            nextCommit = max(nextCommit ?? offset + 1, offset + 1)
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

    /// A partition granted to start at `offset` (the handler keeps its own offsets, and says
    /// where it stopped): everything before it is done, so the group's commit may move
    /// there before any message of the partition is read. A partition whose messages were
    /// all recorded before a crash has nothing left to read, and its commit would otherwise
    /// stay behind for good, its lag never zero.
    public mutating func starts(_ tp: TopicPartition, at offset: Int64) {
        let current = partitions[tp]?.nextCommit
        partitions[tp, default: PartitionOffsets()].nextCommit = max(current ?? offset, offset)
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

    /// Offsets whose commit failed (a broker briefly away): the next `takeCommittable` offers
    /// them again, unless the partition has moved on since. Without this, a partition that
    /// went quiet after a failed commit kept its last offsets uncommitted.
    public mutating func commitFailed(_ offsets: [TopicPartition: Int64]) {
        for (tp, offset) in offsets where partitions[tp]?.lastCommitted == offset {
            partitions[tp]!.lastCommitted = nil
        }
    }
}
