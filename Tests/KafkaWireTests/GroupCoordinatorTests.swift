@testable import Broker
import Foundation
@testable import KafkaWire
import Logging
import Messaging
import TestSupport
import Testing

/// The wire door's group coordinator over a real embedded broker: what its parked requests
/// do when the connection that sent them goes away.
@Suite struct GroupCoordinatorTests {
    func request(_ memberID: String = "", client: String) -> ClassicGroup.JoinRequest {
        .init(memberID: memberID, clientID: client, clientHost: "h", sessionTimeout: .seconds(30), rebalanceTimeout: .seconds(300),
              protocolType: "consumer", protocols: [("range", Array("range".utf8))])
    }

    /// A join parked until the rest of the group rejoins (up to its rebalance timeout, five
    /// minutes here) is answered at once when its request is cancelled, as on a shutdown of
    /// `fulfillment broker`: otherwise the stop waited for the rebalance, and a broker told to
    /// stop while its clients were stopping too hung past any bound.
    @Test func aParkedJoinIsAnsweredWhenItsRequestIsCancelled() async throws {
        let temporary = TemporaryDirectory("coordinator")
        let dir = temporary.path
        let (broker, logger) = try quietBroker(dir, label: "coordinator-test")
        defer { broker.shutdown() }
        let coordinator = GroupCoordinator(broker: broker, logger: logger)

        let first = await coordinator.join(group: "g", request(client: "a"))
        #expect(first.error == .none && first.generation == 1)
        _ = await coordinator.sync(group: "g", memberID: first.memberID, generation: 1, assignments: [first.memberID: [1]])

        // b's join parks: a has not rejoined.
        let parked = Task { await coordinator.join(group: "g", request(client: "b")) }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        parked.cancel()
        let answer = await parked.value
        #expect(answer.error == .coordinatorNotAvailable)
        #expect(ContinuousClock.now - started < .seconds(2))

        // The group still works: a rejoins and completes the rebalance on its own.
        #expect(await coordinator.heartbeat(group: "g", memberID: first.memberID, generation: 1) == .rebalanceInProgress)
        let rejoined = await coordinator.join(group: "g", request(first.memberID, client: "a"))
        #expect(rejoined.error == .none && rejoined.generation == 2)
    }

    /// Groups come and go (a console consumer picks a new group name each run): a group whose
    /// last member left, or went silent, is not held for the life of the listener, and its
    /// committed offsets stay.
    @Test func aGroupWhoseLastMemberIsGoneIsForgottenButItsOffsetsStay() async throws {
        let temporary = TemporaryDirectory("coordinator")
        let (broker, logger) = try quietBroker(temporary.path, label: "coordinator-test")
        defer { broker.shutdown() }
        try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
        let coordinator = GroupCoordinator(broker: broker, logger: logger)
        for n in 0..<50 {
            let joined = await coordinator.join(group: "console-\(n)", request(client: "c"))
            #expect(joined.error == .none)
            _ = await coordinator.sync(group: "console-\(n)", memberID: joined.memberID, generation: joined.generation, assignments: [joined.memberID: [1]])
            #expect(await coordinator.commit(group: "console-\(n)", memberID: joined.memberID, generation: joined.generation, offsets: [TopicPartition("t", 0): 0]) == .none)
            #expect(await coordinator.leave(group: "console-\(n)", memberID: joined.memberID) == .none)
        }
        #expect(await coordinator.groupsHeld == 0)
        #expect(await coordinator.describe("console-7").phase == "Empty", "known by its offsets")

        // One that goes silent: expired past its session timeout (1 s), then forgotten.
        var silent = request(client: "s")
        silent.sessionTimeout = .seconds(1)
        let joined = await coordinator.join(group: "silent", silent)
        _ = await coordinator.sync(group: "silent", memberID: joined.memberID, generation: joined.generation, assignments: [joined.memberID: [1]])
        #expect(await coordinator.groupsHeld == 1)
        try await Task.sleep(for: .milliseconds(1_200))
        await coordinator.expireMembers()
        #expect(await coordinator.groupsHeld == 0)
        // The name can be used again, from a fresh generation.
        let again = await coordinator.join(group: "silent", request(client: "s2"))
        #expect(again.error == .none && again.generation == 1)
    }
}
