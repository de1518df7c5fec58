@testable import SagaRuntime
import Testing

/// The starvation guard between a worker's lanes, without tasks or I/O.
@Suite struct LaneTurnsTests {
    @Test func afterGuardEveryFullVIPBatchesTheVIPLaneWaitsForAStandardTurn() {
        var turns = LaneTurns(guardEvery: 3)
        for _ in 0..<3 {
            #expect(turns.vipMayPoll)
            turns.vipTook(100, asked: 100)
        }
        #expect(!turns.vipMayPoll, "three full VIP batches in a row: the standard lane's turn")
        turns.standardHadTurn()
        #expect(turns.vipMayPoll)
    }

    @Test func aVIPBatchThatIsNotFullOwesNoTurn() {
        var turns = LaneTurns(guardEvery: 2)
        turns.vipTook(100, asked: 100)
        turns.vipTook(3, asked: 100)
        turns.vipTook(100, asked: 100)
        #expect(turns.vipMayPoll, "the VIP topics were drained in between: a trickle, not a flood")
        turns.vipTook(100, asked: 100)
        #expect(!turns.vipMayPoll)
        turns.vipTook(0, asked: 100)
        #expect(turns.vipMayPoll, "an empty poll ends the streak too")
    }

    @Test func aGuardBelowOneStillLetsTheVIPLanePoll() {
        var turns = LaneTurns(guardEvery: 0)
        #expect(turns.vipMayPoll)
        turns.vipTook(1, asked: 1)
        #expect(!turns.vipMayPoll)
    }
}
