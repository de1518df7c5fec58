import Messaging
import Synchronization

/// A member of a consumer group on the embedded broker. Rebalances take effect inside `poll`:
/// revoked partitions are handed to `onRevoke` (to commit) and released before new ones are
/// read; a newly granted partition starts at the group's committed offset, so uncommitted
/// records are redelivered to the next owner exactly from there.
public final class EmbeddedGroupConsumer: GroupConsumer {
    private struct State {
        var positions: [TopicPartition: Int64] = [:]
        var owned: Set<TopicPartition> = [] { didSet { readableInOrder = nil } }
        var paused: Set<TopicPartition> = [] { didSet { readableInOrder = nil } }
        /// `owned` minus `paused`, sorted: the order a fetch goes round. Made again only when
        /// either changes, not at every fetch (a standard lane reads 48 partitions, its
        /// request topic's and its retry tiers', hundreds of times a second).
        private var readableInOrder: [TopicPartition]?
        var cursor = 0
        var closed = false
        /// Logs of owned partitions, so a poll does not look each one up in the broker.
        var logs: [TopicPartition: (log: PartitionLog, delay: Int64)] = [:]
        /// Fetch passes over the partitions; a parked poll makes none.
        var fetchPasses = 0
        /// Delayed partitions whose next record is not due yet: its offset and when it is due.
        /// Until then a fetch skips the partition instead of reading and decoding it again
        /// (a standard lane polls its retry tiers hundreds of times a second).
        var notDue: [TopicPartition: (offset: Int64, due: Int64)] = [:]

        mutating func readable() -> [TopicPartition] {
            if let readableInOrder { return readableInOrder }
            let made = owned.subtracting(paused).sorted()
            readableInOrder = made
            return made
        }
    }

    public let memberID: String
    public let group: String
    let topics: [String]
    let configuration: ConsumerConfiguration
    private let broker: EmbeddedBroker
    private let state = Mutex(State())

    init(broker: EmbeddedBroker, group: String, memberID: String, topics: [String], configuration: ConsumerConfiguration) {
        self.broker = broker
        self.group = group
        self.memberID = memberID
        self.topics = topics
        self.configuration = configuration
    }

    public func poll(maxRecords: Int, maxWait: Duration) async throws -> [ConsumerRecord] {
        let deadline = ContinuousClock.now + maxWait
        while true {
            if state.withLock({ $0.closed }) { throw BrokerError(.closed, "consumer \(memberID) is closed") }
            try await rebalance()
            var (records, nextDue) = try fetch(maxRecords: maxRecords)
            if !records.isEmpty { return records }
            var now = ContinuousClock.now
            if now >= deadline { return [] }
            // Park: register on every readable partition and on the group, then look once
            // more, so a record that became visible in between still wakes us.
            let waiter = Waiter()
            let logs = state.withLock { state in state.readable().compactMap { state.logs[$0]?.log } }
            for log in logs { log.addWaiter(waiter) }
            broker.setGroupWaiter(group: group, memberID: memberID, waiter)
            defer {
                for log in logs { log.removeWaiter(waiter) }
                broker.setGroupWaiter(group: group, memberID: memberID, nil)
            }
            (records, nextDue) = try fetch(maxRecords: maxRecords)
            if !records.isEmpty { return records }
            now = ContinuousClock.now
            var wakeAt = deadline
            if let nextDue {
                let untilDue = Duration.milliseconds(max(0, nextDue - UnixClock.nowMillis()))
                wakeAt = min(wakeAt, now + untilDue)
            }
            await waiter.wait(until: wakeAt)
            if Task.isCancelled { return [] }
        }
    }

    /// Applies what the group coordinator decided since the last poll.
    private func rebalance() async throws {
        let sync: ConsumerGroupState.SyncResult
        do {
            sync = try broker.groupSync(group: group, memberID: memberID)
        } catch let error as BrokerError where error.code == .unknownMember {
            // Expelled after a silence past the session timeout (a handler or a store stalled
            // that long): as Kafka clients do, give up what it held without committing (its
            // new owners resume from the last commit) and join again.
            state.withLock { state in
                state.paused.subtract(state.owned)
                state.owned = []
                state.positions = [:]
                state.logs = [:]
                state.notDue = [:]
            }
            try broker.groupJoin(group: group, memberID: memberID, topics: topics, sessionTimeout: configuration.sessionTimeout)
            sync = try broker.groupSync(group: group, memberID: memberID)
        }
        if !sync.revoke.isEmpty {
            await configuration.onRevoke?(sync.revoke)
            state.withLock { state in
                for tp in sync.revoke {
                    state.positions[tp] = nil
                    state.owned.remove(tp)
                    state.paused.remove(tp)
                    state.logs[tp] = nil
                    state.notDue[tp] = nil
                }
            }
            broker.groupRelease(group: group, memberID: memberID, partitions: sync.revoke)
        }
        guard !sync.granted.isEmpty else { return }
        var starts: [TopicPartition: Int64] = [:]
        var logs: [TopicPartition: (log: PartitionLog, delay: Int64)] = [:]
        let ownStarts = await configuration.startOffsets?(sync.granted) ?? [:]
        for tp in sync.granted {
            let (log, delay) = try broker.partitionLogForConsumer(tp)
            logs[tp] = (log, delay)
            let (begin, end) = log.offsets
            if let own = ownStarts[tp] {
                starts[tp] = max(own, begin)
            } else if let committed = broker.committedOffset(group: group, tp) {
                starts[tp] = max(committed, begin)
            } else {
                starts[tp] = configuration.autoOffsetReset == .earliest ? begin : end
            }
        }
        state.withLock { state in
            for (tp, offset) in starts {
                state.positions[tp] = offset
                state.owned.insert(tp)
                state.logs[tp] = logs[tp]
            }
        }
    }

    private func fetch(maxRecords: Int) throws -> ([ConsumerRecord], Int64?) {
        // Each readable partition's position, log and not-due mark, in round-robin order,
        // looked up in one pass under the lock.
        typealias Readable = (turn: Int, tp: TopicPartition, position: Int64, log: PartitionLog, delay: Int64, notDue: (offset: Int64, due: Int64)?)
        let order: [Readable] = state.withLock { state in
            state.fetchPasses += 1
            let readable = state.readable()
            guard !readable.isEmpty else { return [] }
            state.cursor %= readable.count
            var order: [Readable] = []
            order.reserveCapacity(readable.count)
            for turn in 0..<readable.count {
                let tp = readable[(state.cursor + turn) % readable.count]
                guard let position = state.positions[tp], let (log, delay) = state.logs[tp] else { continue }
                order.append((turn, tp, position, log, delay, state.notDue[tp]))
            }
            return order
        }
        var records: [ConsumerRecord] = []
        var nextDue: Int64?
        var advanced: [TopicPartition: Int64] = [:]
        var waiting: [TopicPartition: (offset: Int64, due: Int64)] = [:]
        let now = UnixClock.nowMillis()
        // Round robin: the next poll starts after the last partition this one read from, so a
        // deep backlog in some partitions never starves the others.
        var lastRead: Int?
        for (turn, tp, start, log, delay, notDue) in order where records.count < maxRecords {
            var position = start
            // Nothing new: skip the read (and its lock) entirely.
            if position >= log.highWatermark { continue }
            // The next record is known not to be due yet: nothing after it is either.
            if let known = notDue, known.offset == position, now < known.due {
                nextDue = min(nextDue ?? known.due, known.due)
                continue
            }
            let result: PartitionLog.ReadResult
            do {
                // Read about what the remaining room can hold, not a full fetch per partition.
                let room = max(64 << 10, (maxRecords - records.count) * 512)
                result = try log.read(from: position, maxBytes: min(configuration.maxPartitionFetchBytes, room))
            } catch let error as BrokerError where error.code == .offsetOutOfRange {
                // Retention removed what we would read next: continue at the oldest record.
                position = log.offsets.begin
                advanced[tp] = position
                continue
            }
            guard !result.bytes.isEmpty else { continue }
            let decoded = try broker.decode(
                result.bytes, topic: tp.topic, partition: tp.partition, from: position, into: &records,
                limit: maxRecords, delay: delay, now: now)
            advanced[tp] = decoded.nextOffset
            if decoded.nextOffset > position { lastRead = turn }
            if let due = decoded.nextDue {
                nextDue = min(nextDue ?? due, due)
                // Only when the decode stopped at that record, not for want of room.
                if records.count < maxRecords { waiting[tp] = (decoded.nextOffset, due) }
            }
        }
        if let lastRead {
            state.withLock { $0.cursor += lastRead + 1 }
        }
        if !advanced.isEmpty {
            state.withLock { state in
                for (tp, offset) in advanced where state.positions[tp] != nil {
                    state.positions[tp] = offset
                    state.notDue[tp] = waiting[tp]
                }
            }
        }
        return (records, nextDue)
    }

    public func commit(_ offsets: [TopicPartition: Int64]) async throws {
        try await broker.groupCommit(group: group, memberID: memberID, offsets: offsets)
    }

    public func assignment() async -> Set<TopicPartition> {
        state.withLock { $0.owned }
    }

    public func pause(_ partitions: Set<TopicPartition>) async {
        state.withLock { $0.paused.formUnion(partitions) }
    }

    public func resume(_ partitions: Set<TopicPartition>) async {
        state.withLock { $0.paused.subtract(partitions) }
    }

    public func seek(_ partition: TopicPartition, to offset: Int64) async throws {
        try state.withLock { (state) in
            guard state.owned.contains(partition) else {
                throw BrokerError(.notPartitionOwner, "member \(memberID) does not own \(partition); seek after it is assigned")
            }
            state.positions[partition] = offset
        }
    }

    /// The next offset this member will read on a partition it owns.
    public func position(_ partition: TopicPartition) -> Int64? {
        state.withLock { $0.positions[partition] }
    }

    var fetchPasses: Int { state.withLock { $0.fetchPasses } }

    public func close() async {
        let wasClosed = state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        if !wasClosed { broker.groupLeave(group: group, memberID: memberID) }
    }
}
