import Testing
@testable import KafkaWire

/// Kafka's classic group protocol as a plain state machine: no sockets, an injected clock.
@Suite struct ClassicGroupTests {
    let t0 = ContinuousClock.now

    func request(_ memberID: String = "", protocols: [String] = ["range"], session: Duration = .seconds(10), rebalance: Duration = .seconds(30)) -> ClassicGroup.JoinRequest {
        .init(memberID: memberID, clientID: "c", clientHost: "h", sessionTimeout: session, rebalanceTimeout: rebalance,
              protocolType: "consumer", protocols: protocols.map { ($0, Array($0.utf8)) })
    }

    /// Two members through a full rebalance; returns the group stable at generation 2.
    func twoStableMembers() -> ClassicGroup {
        var group = ClassicGroup()
        let (first, _) = group.join(request(), newMemberID: "a", now: t0)
        #expect(first?.generation == 1)
        _ = group.sync(memberID: "a", generation: 1, assignments: ["a": [1]], now: t0)
        #expect(group.phase == .stable)
        // b joins: parked until a rejoins (a learns of it from its heartbeat).
        let (parked, none) = group.join(request(), newMemberID: "b", now: t0)
        #expect(parked == nil && none.isEmpty)
        #expect(group.heartbeat(memberID: "a", generation: 1, now: t0) == .rebalanceInProgress)
        let (leaderJoin, completions) = group.join(request("a"), newMemberID: "unused", now: t0)
        #expect(leaderJoin?.generation == 2 && leaderJoin?.leader == "a")
        #expect(leaderJoin?.members.map(\.id) == ["a", "b"], "the leader sees every member's subscription")
        guard case .join("b", let followerJoin) = completions.first else {
            Issue.record("b's parked join was not completed: \(completions)")
            return group
        }
        #expect(followerJoin.members.isEmpty && followerJoin.generation == 2 && followerJoin.memberID == "b")
        return group
    }

    @Test func aFollowersSyncWaitsForTheLeadersAssignment() {
        var group = twoStableMembers()
        #expect(group.phase == .completingRebalance)
        let (follower, nothing) = group.sync(memberID: "b", generation: 2, assignments: [:], now: t0)
        #expect(follower == nil && nothing.isEmpty)
        let (leader, completions) = group.sync(memberID: "a", generation: 2, assignments: ["a": [1], "b": [2]], now: t0)
        #expect(leader == .init(error: .none, assignment: [1]))
        #expect(completions == [.sync(memberID: "b", .init(error: .none, assignment: [2]))])
        #expect(group.phase == .stable)
        #expect(group.heartbeat(memberID: "b", generation: 2, now: t0) == .none)
    }

    @Test func staleGenerationsAndStrangersAreRefused() {
        var group = twoStableMembers()
        _ = group.sync(memberID: "a", generation: 2, assignments: [:], now: t0)
        #expect(group.heartbeat(memberID: "a", generation: 1, now: t0) == .illegalGeneration)
        #expect(group.heartbeat(memberID: "zed", generation: 2, now: t0) == .unknownMemberID)
        #expect(group.sync(memberID: "b", generation: 1, assignments: [:], now: t0).0?.error == .illegalGeneration)
        #expect(group.join(request("zed"), newMemberID: "x", now: t0).0?.error == .unknownMemberID)
        #expect(group.mayCommit(memberID: "a", generation: 1) == .illegalGeneration)
        #expect(group.mayCommit(memberID: "a", generation: 2) == .none)
        #expect(group.mayCommit(memberID: "", generation: -1) == .illegalGeneration, "an outsider cannot commit for a live group")
        #expect(ClassicGroup().mayCommit(memberID: "", generation: -1) == .none, "an empty group takes commits from tools")
    }

    @Test func membersWithoutACommonProtocolCannotJoin() {
        var group = ClassicGroup()
        _ = group.join(request(protocols: ["range", "roundrobin"]), newMemberID: "a", now: t0)
        #expect(group.join(request(protocols: ["sticky"]), newMemberID: "b", now: t0).0?.error == .inconsistentGroupProtocol)
        var other = request(protocols: ["range"])
        other.protocolType = "connect"
        #expect(group.join(other, newMemberID: "c", now: t0).0?.error == .inconsistentGroupProtocol)
        // A common protocol: the leader's first choice that everyone supports.
        _ = group.sync(memberID: "a", generation: 1, assignments: [:], now: t0)
        _ = group.join(request(protocols: ["roundrobin"]), newMemberID: "d", now: t0)
        let (join, _) = group.join(request("a", protocols: ["range", "roundrobin"]), newMemberID: "", now: t0)
        #expect(join?.protocolName == "roundrobin")
    }

    @Test func aLeavingMemberStartsARebalanceAndTheOtherLeadsIt() {
        var group = twoStableMembers()
        _ = group.sync(memberID: "b", generation: 2, assignments: [:], now: t0)
        let (_, completions) = group.sync(memberID: "a", generation: 2, assignments: [:], now: t0)
        #expect(completions.count == 1)
        #expect(group.leave(memberID: "a", now: t0).0 == .none)
        #expect(group.phase == .preparingRebalance)
        #expect(group.heartbeat(memberID: "b", generation: 2, now: t0) == .rebalanceInProgress)
        let (join, _) = group.join(request("b"), newMemberID: "", now: t0)
        #expect(join?.generation == 3 && join?.leader == "b" && join?.members.map(\.id) == ["b"])
        #expect(group.leave(memberID: "b", now: t0).0 == .none)
        #expect(group.phase == .empty && group.isEmpty)
        #expect(group.leave(memberID: "b", now: t0).0 == .unknownMemberID)
    }

    @Test func aSilentMemberIsExpiredAndItsPeersParkedSyncIsToldToRejoin() {
        var group = twoStableMembers()
        // b waits for the leader's assignment; the leader goes silent past its session timeout.
        _ = group.sync(memberID: "b", generation: 2, assignments: [:], now: t0 + .seconds(1))
        #expect(group.expire(now: t0 + .seconds(5)).expired.isEmpty)
        let (expired, completions) = group.expire(now: t0 + .seconds(11))
        #expect(expired == ["a"])
        #expect(completions == [.sync(memberID: "b", .init(error: .rebalanceInProgress, assignment: []))])
        #expect(group.phase == .preparingRebalance)
        let (join, _) = group.join(request("b"), newMemberID: "", now: t0 + .seconds(11))
        #expect(join?.leader == "b" && join?.generation == 3)
    }

    @Test func aMemberThatDoesNotRejoinIsDroppedAtTheRebalanceTimeout() {
        var group = ClassicGroup()
        _ = group.join(request(session: .seconds(60), rebalance: .seconds(5)), newMemberID: "a", now: t0)
        _ = group.sync(memberID: "a", generation: 1, assignments: [:], now: t0)
        let (parked, _) = group.join(request(session: .seconds(60), rebalance: .seconds(5)), newMemberID: "b", now: t0)
        #expect(parked == nil)
        #expect(group.expire(now: t0 + .seconds(4)).expired.isEmpty, "a still has time to rejoin")
        let (expired, completions) = group.expire(now: t0 + .seconds(6))
        #expect(expired == ["a"])
        guard case .join("b", let join) = completions.first else {
            Issue.record("b's join should complete once a is dropped: \(completions)")
            return
        }
        #expect(join.error == .none && join.leader == "b" && join.generation == 2)
    }

    @Test func aParkedJoinIsAnsweredWhenItsMemberIsRemoved() {
        var group = twoStableMembers()
        _ = group.sync(memberID: "a", generation: 2, assignments: [:], now: t0)
        // c joins and parks; then a and b leave: the rebalance completes with c alone.
        let (parked, _) = group.join(request(), newMemberID: "c", now: t0)
        #expect(parked == nil)
        _ = group.leave(memberID: "a", now: t0)
        let (_, completions) = group.leave(memberID: "b", now: t0)
        guard case .join("c", let join) = completions.last else {
            Issue.record("c's join should complete: \(completions)")
            return
        }
        #expect(join.leader == "c" && join.members.map(\.id) == ["c"])
    }
}
