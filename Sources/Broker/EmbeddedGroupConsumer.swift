import Messaging
import Synchronization

/// A member of a consumer group on the embedded broker. Rebalances take effect inside `poll`:
/// revoked partitions are handed to `onRevoke` (to commit) and released before new ones are
/// read; a newly granted partition starts at the group's committed offset, so uncommitted
/// records are redelivered to the next owner exactly from there.
public final class EmbeddedGroupConsumer: GroupConsumer {
    /// An owned partition's read state. Kept in `State` and touched only under its lock; the
    /// round-robin list holds the same objects, so a fetch looks nothing up by partition.
    /// Unchecked: its `var`s are read and written only under the consumer's lock; outside it
    /// a fetch uses only the `let`s.
    private final class Slot: @unchecked Sendable {
        let tp: TopicPartition
        let log: PartitionLog
        /// The topic's delivery delay (ms), for delayed retry tiers.
        let delay: Int64
        var position: Int64
        /// The next record is known not to be due yet: its offset and when it is due. Until
        /// then a fetch skips the partition instead of reading and decoding it again (a
        /// standard lane polls its retry tiers hundreds of times a second).
        var notDue: (offset: Int64, due: Int64)?
        /// Revoked: a fetch that took it before must not move its position.
        var released = false

        init(tp: TopicPartition, log: PartitionLog, delay: Int64, position: Int64) {
            self.tp = tp
            self.log = log
            self.delay = delay
            self.position = position
        }
    }

    private struct State {
        /// The owned partitions.
        var slots: [TopicPartition: Slot] = [:] { didSet { readableInOrder = nil } }
        var paused: Set<TopicPartition> = [] { didSet { readableInOrder = nil } }
        /// Owned and not paused, sorted: the order a fetch goes round. Made again only when
        /// either changes, not at every fetch: a poll checks each of them, and the tracker
        /// reads hundreds of partitions, most of them idle, for every event it records.
        private var readableInOrder: [Slot]?
        var cursor = 0
        var closed = false
        /// Fetch passes over the partitions; a parked poll makes none.
        var fetchPasses = 0

        var owned: Set<TopicPartition> { Set(slots.keys) }

        mutating func readable() -> [Slot] {
            if let readableInOrder { return readableInOrder }
            let made = slots.values.filter { !paused.contains($0.tp) }.sorted { $0.tp < $1.tp }
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
            let logs = state.withLock { state in state.readable().map(\.log) }
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
                for slot in state.slots.values { slot.released = true }
                state.slots = [:]
            }
            try broker.groupJoin(group: group, memberID: memberID, topics: topics, sessionTimeout: configuration.sessionTimeout)
            sync = try broker.groupSync(group: group, memberID: memberID)
        }
        if !sync.revoke.isEmpty {
            await configuration.onRevoke?(sync.revoke)
            state.withLock { state in
                for tp in sync.revoke {
                    state.slots.removeValue(forKey: tp)?.released = true
                    state.paused.remove(tp)
                }
            }
            broker.groupRelease(group: group, memberID: memberID, partitions: sync.revoke)
        }
        guard !sync.granted.isEmpty else { return }
        var granted: [Slot] = []
        let ownStarts = await configuration.startOffsets?(sync.granted) ?? [:]
        for tp in sync.granted {
            let (log, delay) = try broker.partitionLogForConsumer(tp)
            let (begin, end) = log.offsets
            let start: Int64
            if let own = ownStarts[tp] {
                start = max(own, begin)
            } else if let committed = broker.committedOffset(group: group, tp) {
                start = max(committed, begin)
            } else {
                start = configuration.autoOffsetReset == .earliest ? begin : end
            }
            granted.append(Slot(tp: tp, log: log, delay: delay, position: start))
        }
        state.withLock { state in
            for slot in granted { state.slots[slot.tp] = slot }
        }
    }

    private func fetch(maxRecords: Int) throws -> ([ConsumerRecord], Int64?) {
        // The partitions with something to read, in round-robin order, found in one pass
        // under the lock: one atomic load for each partition with nothing new.
        typealias Readable = (turn: Int, slot: Slot, position: Int64)
        let now = UnixClock.nowMillis()
        var nextDue: Int64?
        let order: [Readable] = state.withLock { state in
            state.fetchPasses += 1
            let readable = state.readable()
            guard !readable.isEmpty else { return [] }
            state.cursor %= readable.count
            var order: [Readable] = []
            for turn in 0..<readable.count {
                let slot = readable[(state.cursor + turn) % readable.count]
                if slot.position >= slot.log.highWatermark { continue }
                if let known = slot.notDue, known.offset == slot.position, now < known.due {
                    nextDue = min(nextDue ?? known.due, known.due)
                    continue
                }
                order.append((turn, slot, slot.position))
            }
            return order
        }
        var records: [ConsumerRecord] = []
        var advanced: [(slot: Slot, from: Int64, to: Int64, notDue: (offset: Int64, due: Int64)?)] = []
        // Round robin: the next poll starts after the last partition this one read from, so a
        // deep backlog in some partitions never starves the others.
        var lastRead: Int?
        for (turn, slot, position) in order where records.count < maxRecords {
            let tp = slot.tp
            let result: PartitionLog.ReadResult
            do {
                // Read about what the remaining room can hold, not a full fetch per partition.
                let room = max(64 << 10, (maxRecords - records.count) * 512)
                result = try slot.log.read(from: position, maxBytes: min(configuration.maxPartitionFetchBytes, room))
            } catch let error as BrokerError where error.code == .offsetOutOfRange {
                // Retention removed what we would read next: continue at the oldest record.
                advanced.append((slot, position, slot.log.offsets.begin, nil))
                continue
            }
            guard !result.bytes.isEmpty else { continue }
            let decoded = try broker.decode(
                result.bytes, topic: tp.topic, partition: tp.partition, from: position, into: &records,
                limit: maxRecords, delay: slot.delay, now: now)
            if decoded.nextOffset > position { lastRead = turn }
            var waiting: (offset: Int64, due: Int64)?
            if let due = decoded.nextDue {
                nextDue = min(nextDue ?? due, due)
                // Only when the decode stopped at that record, not for want of room.
                if records.count < maxRecords { waiting = (decoded.nextOffset, due) }
            }
            advanced.append((slot, position, decoded.nextOffset, waiting))
        }
        if lastRead != nil || !advanced.isEmpty {
            state.withLock { state in
                if let lastRead { state.cursor += lastRead + 1 }
                // A partition revoked, or sought elsewhere, since the pass began keeps what
                // was decided meanwhile.
                for (slot, from, to, notDue) in advanced where !slot.released && slot.position == from {
                    slot.position = to
                    slot.notDue = notDue
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
            guard let slot = state.slots[partition] else {
                throw BrokerError(.notPartitionOwner, "member \(memberID) does not own \(partition); seek after it is assigned")
            }
            slot.position = offset
            slot.notDue = nil
        }
    }

    /// The next offset this member will read on a partition it owns.
    public func position(_ partition: TopicPartition) -> Int64? {
        state.withLock { $0.slots[partition]?.position }
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
