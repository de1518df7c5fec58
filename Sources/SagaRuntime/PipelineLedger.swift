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

    /// Pending offsets per partition in arrival order, and those already flushed.
    private var pending: [TopicPartition: [Int64]] = [:]
    private var pendingHead: [TopicPartition: Int] = [:]
    private var flushedNotPopped: [TopicPartition: Set<Int64>] = [:]
    private var nextCommit: [TopicPartition: Int64] = [:]
    private var lastCommitted: [TopicPartition: Int64] = [:]
    /// Orders with a message being handled, and the messages queued behind it.
    private var busyOrders: [String: [Int]] = [:]
    public private(set) var taken = 0

    public init() {}

    /// Registers a consumed message. Returns `true` when it may start now, `false` when it
    /// was queued behind another message of the same order (identified by `token`).
    public mutating func receive(_ entry: Entry, token: Int) -> Bool {
        pending[entry.tp, default: []].append(entry.offset)
        taken += 1
        if busyOrders[entry.orderKey] != nil {
            busyOrders[entry.orderKey]!.append(token)
            return false
        }
        busyOrders[entry.orderKey] = []
        return true
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
        flushedNotPopped[tp, default: []].insert(offset)
        var head = pendingHead[tp] ?? 0
        let list = pending[tp] ?? []
        while head < list.count, flushedNotPopped[tp]!.remove(list[head]) != nil {
            nextCommit[tp] = list[head] + 1
            head += 1
        }
        if head == list.count {
            pending[tp] = []
            head = 0
        } else if head > 1024 {
            pending[tp] = Array(list[head...])
            head = 0
        }
        pendingHead[tp] = head
    }

    /// A message given back without an outcome (shutdown): it stays uncommitted.
    public mutating func abandoned() {
        taken -= 1
    }

    /// Offsets that advanced since the last call: safe to commit.
    public mutating func takeCommittable() -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for (tp, offset) in nextCommit where lastCommitted[tp] != offset {
            result[tp] = offset
            lastCommitted[tp] = offset
        }
        return result
    }

    /// Forgets partitions that moved to another member.
    public mutating func revoke(_ partitions: Set<TopicPartition>) {
        for tp in partitions {
            pending[tp] = nil
            pendingHead[tp] = nil
            flushedNotPopped[tp] = nil
            nextCommit[tp] = nil
            lastCommitted[tp] = nil
        }
    }
}
