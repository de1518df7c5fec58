@testable import Broker
import Foundation
@testable import KafkaWire
import Logging
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
}
