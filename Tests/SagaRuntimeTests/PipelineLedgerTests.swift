import Messaging
@testable import SagaRuntime
import Testing

@Suite struct PipelineLedgerTests {
    let p0 = TopicPartition("payment.requested", 0)
    let p1 = TopicPartition("payment.requested", 1)

    @Test func offsetsAreCommittedOnlyUpToTheFirstUnfinishedMessage() {
        var ledger = PipelineLedger()
        for offset in Int64(0)..<5 {
            let started = ledger.receive(.init(tp: p0, offset: offset, orderKey: "o-\(offset)"), token: Int(offset))
            #expect(started)
        }
        ledger.flushed(p0, 1)
        ledger.flushed(p0, 2)
        #expect(ledger.takeCommittable().isEmpty, "offset 0 is still being handled")
        ledger.flushed(p0, 0)
        #expect(ledger.takeCommittable() == [p0: 3])
        ledger.flushed(p0, 4)
        #expect(ledger.takeCommittable().isEmpty)
        ledger.flushed(p0, 3)
        #expect(ledger.takeCommittable() == [p0: 5])
        #expect(ledger.taken == 0)
    }

    @Test func partitionsAreIndependent() {
        var ledger = PipelineLedger()
        _ = ledger.receive(.init(tp: p0, offset: 10, orderKey: "a"), token: 0)
        _ = ledger.receive(.init(tp: p1, offset: 7, orderKey: "b"), token: 1)
        ledger.flushed(p1, 7)
        #expect(ledger.takeCommittable() == [p1: 8])
    }

    @Test func oneOrderIsNeverHandledTwiceAtOnce() {
        var ledger = PipelineLedger()
        let r1 = ledger.receive(.init(tp: p0, offset: 0, orderKey: "o-1"), token: 0)
        #expect(r1)
        let r2 = ledger.receive(.init(tp: p1, offset: 0, orderKey: "o-1"), token: 1)
        #expect(!r2, "queued behind the first")
        let r3 = ledger.receive(.init(tp: p0, offset: 1, orderKey: "o-2"), token: 2)
        #expect(r3)
        let r4 = ledger.receive(.init(tp: p0, offset: 2, orderKey: "o-1"), token: 3)
        #expect(!r4)
        let r5 = ledger.finishHandling(orderKey: "o-1")
        #expect(r5 == 1)
        let r6 = ledger.finishHandling(orderKey: "o-1")
        #expect(r6 == 3)
        let r7 = ledger.finishHandling(orderKey: "o-1")
        #expect(r7 == nil)
        let r8 = ledger.receive(.init(tp: p0, offset: 3, orderKey: "o-1"), token: 4)
        #expect(r8, "free again")
    }

    /// A rebalance that hands a partition back to the same member (eager rebalancing does)
    /// makes it read again from its last commit while the first copies are still in hand, so
    /// offsets arrive twice. The commit once went back to 11 after 12, and then stopped for
    /// good: the head waited on an 11 whose flush the first copy had used up.
    @Test func offsetsReadTwiceAfterARebalanceNeitherMoveTheCommitBackNorStallIt() {
        var ledger = PipelineLedger()
        ledger.receiveInTurn(p0, 10)
        ledger.receiveInTurn(p0, 11)
        ledger.flushed(p0, 11)
        #expect(ledger.takeCommittable().isEmpty, "10 is still being handled")
        // Handed back: read again from the last commit, 10.
        ledger.receiveInTurn(p0, 10)
        ledger.receiveInTurn(p0, 11)
        ledger.flushed(p0, 11)  // the second 11 was already recorded: done at once
        ledger.flushed(p0, 10)  // the first 10
        #expect(ledger.takeCommittable() == [p0: 12])
        ledger.flushed(p0, 10)  // the second 10
        #expect(ledger.takeCommittable().isEmpty, "never back to 11")
        for offset in Int64(12)..<15 {
            ledger.receiveInTurn(p0, offset)
            ledger.flushed(p0, offset)
        }
        #expect(ledger.takeCommittable() == [p0: 15])
        #expect(ledger.taken == 0)
    }

    @Test func aFailedCommitIsOfferedAgainUnlessThePartitionMovedOn() {
        var ledger = PipelineLedger()
        ledger.receiveInTurn(p0, 0)
        ledger.receiveInTurn(p1, 0)
        ledger.flushed(p0, 0)
        ledger.flushed(p1, 0)
        let first = ledger.takeCommittable()
        #expect(first == [p0: 1, p1: 1])
        #expect(ledger.takeCommittable().isEmpty)
        // Both commits failed; p1 moved on before the next round.
        ledger.commitFailed(first)
        ledger.receiveInTurn(p1, 1)
        ledger.flushed(p1, 1)
        #expect(ledger.takeCommittable() == [p0: 1, p1: 2])
        // A failure reported for an offset already passed changes nothing.
        ledger.commitFailed([p1: 1])
        #expect(ledger.takeCommittable().isEmpty)
    }
}
