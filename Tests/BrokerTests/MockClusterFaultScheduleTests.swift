import KafkaClient
import Testing

/// The mock cluster's fault schedule as a plain value: seeded, bounded, and only faults a
/// real cluster can show.
@Suite struct MockClusterFaultScheduleTests {
    func steps(seed: UInt64, count: Int = 200) -> [MockClusterFaultSchedule.Step] {
        Array(MockClusterFaultSchedule(seed: seed, brokers: 3, count: count, interval: .seconds(2)))
    }

    @Test func theSameSeedGivesTheSameScheduleAndAnotherSeedAnother() {
        #expect(steps(seed: 42) == steps(seed: 42))
        #expect(steps(seed: 42) != steps(seed: 43))
    }

    @Test func itStopsAfterItsCount() {
        #expect(steps(seed: 1, count: 20).count == 20)
        #expect(steps(seed: 1, count: 0).isEmpty)
    }

    @Test func everyFaultIsOneARealClusterShows() {
        var downs = 0
        var pushed: Set<MockClusterFaultSchedule.MockAPI> = []
        for step in steps(seed: 7) {
            #expect(step.after >= .seconds(1) && step.after <= .seconds(3))
            switch step.fault {
            case .brokerDown(let id, let duration):
                downs += 1
                #expect((1...3).contains(id))
                #expect(duration >= .milliseconds(300) && duration <= .seconds(2))
            case .failRequests(let api, let errors):
                pushed.insert(api)
                #expect((1...5).contains(errors.count))
                if api == .offsetCommit { #expect(!errors.contains(.notLeaderOrFollower)) }
                if api != .offsetCommit { #expect(!errors.contains(.notCoordinator)) }
            }
        }
        #expect(downs > 20 && downs < 120, "about a third are broker outages: \(downs) of 200")
        #expect(pushed == Set(MockClusterFaultSchedule.MockAPI.allCases))
    }
}
