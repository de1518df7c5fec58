import Messaging
/// Partition ownership within one consumer group, as a plain state machine with an injected
/// clock and no I/O.
///
/// Ownership is handed over incrementally: a partition that should move is first revoked
/// from its owner (which learns of it at its next poll, commits, and releases it) and only
/// then granted to its new member, so no partition ever has two owners. A member that stops
/// polling past the session timeout is expelled and its partitions are free at once.
public struct ConsumerGroupState: Sendable {
    public struct Member: Sendable {
        public let id: String
        public let topics: Set<String>
        public let joinOrder: Int
        public var lastSeen: ContinuousClock.Instant
        public var owned: Set<TopicPartition>
        /// Set when a sync left the member owning exactly its share: the generation and the
        /// partition counts that share was computed from. While both are unchanged, nothing
        /// can be revoked or granted, so its next syncs only refresh `lastSeen` (a member
        /// syncs at every poll, hundreds of times a second).
        var settled: (generation: Int, partitionCounts: [String: Int])?
    }

    /// What a member learns when it polls.
    public struct SyncResult: Sendable, Equatable {
        /// Partitions to commit and release: they belong to someone else now.
        public var revoke: Set<TopicPartition>
        /// Partitions granted by this sync.
        public var granted: Set<TopicPartition>
        public var owned: Set<TopicPartition>
        public var generation: Int
    }

    public let sessionTimeout: Duration
    public private(set) var members: [String: Member] = [:]
    public private(set) var owners: [TopicPartition: String] = [:]
    public private(set) var generation = 0
    private var joins = 0

    public init(sessionTimeout: Duration) {
        self.sessionTimeout = sessionTimeout
    }

    public mutating func join(memberID: String, topics: Set<String>, now: ContinuousClock.Instant) {
        joins += 1
        members[memberID] = Member(id: memberID, topics: topics, joinOrder: joins, lastSeen: now, owned: [], settled: nil)
        generation += 1
    }

    /// Removes a member; returns the partitions it held, now free.
    @discardableResult
    public mutating func leave(memberID: String) -> Set<TopicPartition> {
        guard let member = members.removeValue(forKey: memberID) else { return [] }
        for tp in member.owned where owners[tp] == memberID { owners[tp] = nil }
        generation += 1
        return member.owned
    }

    /// Expels every member silent for longer than the session timeout.
    @discardableResult
    public mutating func expire(now: ContinuousClock.Instant) -> [String] {
        let expired = members.values.filter { now - $0.lastSeen > sessionTimeout }.map(\.id).sorted()
        for id in expired { leave(memberID: id) }
        return expired
    }

    /// A member's poll: refreshes its liveness, tells it what to give up, and grants it every
    /// partition of its share that nobody holds.
    public mutating func sync(memberID: String, now: ContinuousClock.Instant, partitionCounts: [String: Int]) throws -> SyncResult {
        expire(now: now)
        if let settled = members[memberID]?.settled, settled.generation == generation, settled.partitionCounts == partitionCounts {
            members[memberID]!.lastSeen = now
            return SyncResult(revoke: [], granted: [], owned: members[memberID]!.owned, generation: generation)
        }
        return try syncAssignment(memberID: memberID, now: now, partitionCounts: partitionCounts)
    }

    private mutating func syncAssignment(memberID: String, now: ContinuousClock.Instant, partitionCounts: [String: Int]) throws -> SyncResult {
        guard var member = members[memberID] else {
            throw BrokerError(.unknownMember, "member \(memberID) is no longer in the group (it stopped polling past the session timeout); rejoin")
        }
        member.lastSeen = now
        let target = targetAssignment(for: memberID, partitionCounts: partitionCounts)
        let revoke = member.owned.subtracting(target)
        var granted: Set<TopicPartition> = []
        for tp in target where owners[tp] == nil {
            owners[tp] = memberID
            member.owned.insert(tp)
            granted.insert(tp)
        }
        member.settled = member.owned == target ? (generation, partitionCounts) : nil
        members[memberID] = member
        return SyncResult(revoke: revoke, granted: granted, owned: member.owned, generation: generation)
    }

    /// The member gives partitions back (after committing them).
    public mutating func release(memberID: String, partitions: Set<TopicPartition>) {
        guard var member = members[memberID] else { return }
        member.settled = nil
        for tp in partitions where owners[tp] == memberID {
            owners[tp] = nil
            member.owned.remove(tp)
        }
        members[memberID] = member
    }

    public func owns(memberID: String, _ tp: TopicPartition) -> Bool { owners[tp] == memberID }

    /// Kafka's range assignor: per topic, subscribed members in join order each take a
    /// contiguous range, the first ones one extra partition when it does not divide evenly.
    public func targetAssignment(for memberID: String, partitionCounts: [String: Int]) -> Set<TopicPartition> {
        guard let member = members[memberID] else { return [] }
        var result: Set<TopicPartition> = []
        for topic in member.topics {
            guard let count = partitionCounts[topic], count > 0 else { continue }
            let subscribers = members.values.filter { $0.topics.contains(topic) }.sorted { $0.joinOrder < $1.joinOrder }
            guard let rank = subscribers.firstIndex(where: { $0.id == memberID }) else { continue }
            let base = count / subscribers.count
            let extra = count % subscribers.count
            let start = rank * base + min(rank, extra)
            let length = base + (rank < extra ? 1 : 0)
            for p in start..<(start + length) { result.insert(TopicPartition(topic, p)) }
        }
        return result
    }
}
