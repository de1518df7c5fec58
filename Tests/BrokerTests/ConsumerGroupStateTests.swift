@testable import Broker
import KafkaClient
@testable import Messaging
import Testing

/// The ownership state machine alone: no I/O, an injected clock.
@Suite struct ConsumerGroupStateTests {
    let t0 = ContinuousClock.now
    let counts = ["orders": 6]

    private func assertSingleOwners(_ state: ConsumerGroupState) {
        var seen: [TopicPartition: String] = [:]
        for member in state.members.values {
            for tp in member.owned {
                #expect(seen[tp] == nil, "\(tp) owned by \(seen[tp] ?? "") and \(member.id)")
                seen[tp] = member.id
                #expect(state.owners[tp] == member.id)
            }
        }
    }

    @Test func threeMembersSplitSixPartitionsTwoEach() throws {
        var state = ConsumerGroupState(sessionTimeout: .seconds(10))
        for id in ["a", "b", "c"] { state.join(memberID: id, topics: ["orders"], now: t0) }
        var owned: [String: Set<TopicPartition>] = [:]
        for id in ["a", "b", "c"] { owned[id] = try state.sync(memberID: id, now: t0, partitionCounts: counts).owned }
        #expect(owned.values.map(\.count) == [2, 2, 2])
        #expect(owned.values.reduce(Set()) { $0.union($1) }.count == 6)
        assertSingleOwners(state)
    }

    @Test func aPartitionMovesOnlyAfterItsOwnerReleasesIt() throws {
        var state = ConsumerGroupState(sessionTimeout: .seconds(10))
        state.join(memberID: "a", topics: ["orders"], now: t0)
        let first = try state.sync(memberID: "a", now: t0, partitionCounts: counts)
        #expect(first.owned.count == 6)
        state.join(memberID: "b", topics: ["orders"], now: t0)
        // b polls first: everything it should get is still a's, so it gets nothing yet.
        let early = try state.sync(memberID: "b", now: t0, partitionCounts: counts)
        #expect(early.owned.isEmpty)
        assertSingleOwners(state)
        // a polls: told to give up three partitions; until it releases them it keeps them.
        let revoke = try state.sync(memberID: "a", now: t0, partitionCounts: counts).revoke
        #expect(revoke.count == 3)
        #expect(try state.sync(memberID: "b", now: t0, partitionCounts: counts).owned.isEmpty)
        state.release(memberID: "a", partitions: revoke)
        let late = try state.sync(memberID: "b", now: t0, partitionCounts: counts)
        #expect(late.granted == revoke)
        assertSingleOwners(state)
    }

    @Test func aMemberSilentPastTheSessionTimeoutIsExpelledAndItsPartitionsFreed() throws {
        var state = ConsumerGroupState(sessionTimeout: .seconds(10))
        state.join(memberID: "a", topics: ["orders"], now: t0)
        state.join(memberID: "b", topics: ["orders"], now: t0)
        _ = try state.sync(memberID: "a", now: t0, partitionCounts: counts)
        _ = try state.sync(memberID: "b", now: t0, partitionCounts: counts)
        // b keeps polling; a goes silent.
        _ = try state.sync(memberID: "b", now: t0 + .seconds(9), partitionCounts: counts)
        let after = try state.sync(memberID: "b", now: t0 + .seconds(11), partitionCounts: counts)
        #expect(after.owned.count == 6)
        #expect(state.members["a"] == nil)
        #expect(throws: BrokerError.self) { try state.sync(memberID: "a", now: t0 + .seconds(12), partitionCounts: counts) }
        assertSingleOwners(state)
    }

    @Test func leavingFreesPartitionsAtOnce() throws {
        var state = ConsumerGroupState(sessionTimeout: .seconds(10))
        state.join(memberID: "a", topics: ["orders"], now: t0)
        state.join(memberID: "b", topics: ["orders"], now: t0)
        let a = try state.sync(memberID: "a", now: t0, partitionCounts: counts).owned
        _ = try state.sync(memberID: "b", now: t0, partitionCounts: counts)
        #expect(state.leave(memberID: "a") == a)
        #expect(try state.sync(memberID: "b", now: t0, partitionCounts: counts).owned.count == 6)
    }

    @Test func membersOnlyGetTopicsTheySubscribeTo() throws {
        var state = ConsumerGroupState(sessionTimeout: .seconds(10))
        state.join(memberID: "a", topics: ["orders"], now: t0)
        state.join(memberID: "b", topics: ["orders", "orders.retry.1"], now: t0)
        let all = ["orders": 2, "orders.retry.1": 3]
        let a = try state.sync(memberID: "a", now: t0, partitionCounts: all).owned
        let b = try state.sync(memberID: "b", now: t0, partitionCounts: all).owned
        #expect(a == [TopicPartition("orders", 0)])
        #expect(b == [TopicPartition("orders", 1), TopicPartition("orders.retry.1", 0), TopicPartition("orders.retry.1", 1), TopicPartition("orders.retry.1", 2)])
    }

    /// A member that owns exactly its share syncs without recomputing it (`settled`); those
    /// syncs must still keep it alive and must still see a topic that grew.
    @Test func aSettledMemberStaysAliveAndSeesItsTopicGrow() throws {
        var state = ConsumerGroupState(sessionTimeout: .seconds(10))
        state.join(memberID: "a", topics: ["orders"], now: t0)
        #expect(try state.sync(memberID: "a", now: t0, partitionCounts: counts).granted.count == 6)
        for second in [8, 16, 24] {
            let again = try state.sync(memberID: "a", now: t0 + .seconds(second), partitionCounts: counts)
            #expect(again.granted.isEmpty && again.revoke.isEmpty && again.owned.count == 6)
        }
        #expect(state.members["a"] != nil)
        let grown = try state.sync(memberID: "a", now: t0 + .seconds(25), partitionCounts: ["orders": 8])
        #expect(grown.granted == [TopicPartition("orders", 6), TopicPartition("orders", 7)])
        let shrunk = try state.sync(memberID: "a", now: t0 + .seconds(26), partitionCounts: counts)
        #expect(shrunk.revoke == [TopicPartition("orders", 6), TopicPartition("orders", 7)])
    }

    /// Random joins, leaves, syncs, releases, silences and topic sizes: after every sync, what
    /// the member owns is what the range assignor's rule says, whether or not the sync took
    /// the settled shortcut: nothing outside its share except what it was told to revoke, and
    /// every partition of its share that nobody else holds.
    @Test func syncsFollowTheAssignmentRuleThroughRandomChanges() throws {
        var random = SplitMix64(seed: 17)  // the same sequence on every run
        for _ in 0..<50 {
            var state = ConsumerGroupState(sessionTimeout: .seconds(10))
            var now = t0
            var sizes = ["orders": 4, "orders.retry.1": 3]
            var pendingRevoke: [String: Set<TopicPartition>] = [:]
            var joined = 0
            for _ in 0..<300 {
                let ids = state.members.keys.sorted()
                switch random.next() % 10 {
                case 0:
                    joined += 1
                    state.join(memberID: "m\(joined)", topics: random.next() % 2 == 0 ? ["orders"] : ["orders", "orders.retry.1"], now: now)
                case 1 where !ids.isEmpty:
                    state.leave(memberID: ids[Int(random.next() % UInt64(ids.count))])
                case 2:
                    sizes["orders"] = 1 + Int(random.next() % 6)
                case 3:
                    now += .seconds(Int(random.next() % 4))
                case 4 where !pendingRevoke.isEmpty:
                    let id = pendingRevoke.keys.sorted()[0]
                    state.release(memberID: id, partitions: pendingRevoke.removeValue(forKey: id)!)
                default:
                    guard !ids.isEmpty else { continue }
                    let id = ids[Int(random.next() % UInt64(ids.count))]
                    guard let result = try? state.sync(memberID: id, now: now, partitionCounts: sizes) else { continue }
                    if !result.revoke.isEmpty { pendingRevoke[id, default: []].formUnion(result.revoke) }
                    let target = state.targetAssignment(for: id, partitionCounts: sizes)
                    #expect(result.owned.subtracting(target).isSubset(of: pendingRevoke[id] ?? []))
                    for tp in target { #expect(result.owned.contains(tp) || (state.owners[tp] != nil && state.owners[tp] != id)) }
                    assertSingleOwners(state)
                }
            }
        }
    }
}
