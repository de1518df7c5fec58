import Messaging
import SagaDomain
@testable import SagaRuntime
import Testing

/// The worker runtime's bookkeeping without tasks or I/O: time is passed in.
@Suite struct WorkerPipelineTests {
    typealias Pipeline = WorkerPipeline<String>
    let t0 = ContinuousClock.now

    func message(_ order: String, offset: Int64, partition: Int = 0, vip: Bool = false) -> InboundMessage {
        let headers = SagaMessages.headers(orderID: order, key: "\(order):payment", step: "payment", attempt: 1, priority: vip ? .vip : .standard)
        return InboundMessage(record: ConsumerRecord(
            topic: "payment.requested", partition: partition, offset: offset, timestamp: 0, key: Array(order.utf8), value: [], headers: headers))
    }

    func orders(_ launches: [Pipeline.Launch]) -> [String] { launches.map(\.message.orderID) }

    @Test func atMostConcurrencyAttemptsRunAndAFreedSlotTakesTheNextMessage() {
        var pipeline = Pipeline(concurrency: 2, timeoutSeconds: 10)
        var launched: [Pipeline.Launch] = []
        for (i, order) in ["a", "b", "c"].enumerated() {
            launched += pipeline.receive(message(order, offset: Int64(i)), known: nil, now: t0)
        }
        #expect(orders(launched) == ["a", "b"])
        #expect(pipeline.runningCount == 2)
        let next = pipeline.attemptEnded(launched[0].token, outcome: .work("done a"), now: t0)
        #expect(orders(next) == ["c"], "the freed slot goes to the waiting message")
        #expect(pipeline.takeFinished(max: 10).map(\.message.orderID) == ["a"])
    }

    @Test func vipMessagesTakeAFreeSlotBeforeStandardOnes() {
        var pipeline = Pipeline(concurrency: 1, timeoutSeconds: 10)
        let first = pipeline.receive(message("s-1", offset: 0), known: nil, now: t0)
        #expect(pipeline.receive(message("s-2", offset: 1), known: nil, now: t0).isEmpty)
        #expect(pipeline.receive(message("v-1", offset: 0, partition: 1, vip: true), known: nil, now: t0).isEmpty)
        let next = pipeline.attemptEnded(first[0].token, outcome: .work("ok"), now: t0)
        #expect(orders(next) == ["v-1"])
        let last = pipeline.attemptEnded(next[0].token, outcome: .work("ok"), now: t0)
        #expect(orders(last) == ["s-2"])
    }

    @Test func oneOrderIsHandledOneMessageAtATimeInArrivalOrder() {
        var pipeline = Pipeline(concurrency: 8, timeoutSeconds: 10)
        let a = pipeline.receive(message("o-1", offset: 0), known: nil, now: t0)
        #expect(pipeline.receive(message("o-1", offset: 0, partition: 1), known: nil, now: t0).isEmpty, "waits behind the running message of its order")
        #expect(orders(pipeline.receive(message("o-2", offset: 1), known: nil, now: t0)) == ["o-2"])
        let b = pipeline.attemptEnded(a[0].token, outcome: .work("first"), now: t0)
        #expect(b.map(\.message.record.partition) == [1])
        _ = pipeline.attemptEnded(b[0].token, outcome: .work("second"), now: t0)
        let finished = pipeline.takeFinished(max: 10)
        #expect(finished.compactMap { if case .work(let w) = $0.outcome { w } else { nil } } == ["first", "second"])
    }

    @Test func aDecidedMessageBehindARunningOneFinishesWithoutAnAttempt() {
        var pipeline = Pipeline(concurrency: 8, timeoutSeconds: 10)
        let a = pipeline.receive(message("o-1", offset: 0), known: nil, now: t0)
        let reemit = ProducerRecord(topic: "inventory.requested", key: "o-1", value: "{}")
        #expect(pipeline.receive(message("o-1", offset: 1), known: .recorded([reemit]), now: t0).isEmpty)
        #expect(pipeline.receive(message("o-1", offset: 2), known: nil, now: t0).isEmpty)
        let next = pipeline.attemptEnded(a[0].token, outcome: .work("charged"), now: t0)
        #expect(next.map(\.message.record.offset) == [2], "the recorded one finished at once; the one after it starts")
        let finished = pipeline.takeFinished(max: 10)
        #expect(finished.map(\.message.record.offset) == [0, 1])
        if case .recorded(let records) = finished[1].outcome { #expect(records.map(\.topic) == ["inventory.requested"]) } else { Issue.record("expected the recorded outcome") }
    }

    @Test func anAttemptPastItsTimeoutEndsAsATimeoutWhateverItReturns() {
        var pipeline = Pipeline(concurrency: 2, timeoutSeconds: 1)
        let a = pipeline.receive(message("o-1", offset: 0), known: nil, now: t0)
        #expect(pipeline.markOverdue(now: t0 + .milliseconds(999)) { _ in nil }.isEmpty)
        let overdue = pipeline.markOverdue(now: t0 + .seconds(1)) { _ in nil }
        #expect(overdue.map(\.failure.errorClass) == [StepFailure.timeoutClass])
        #expect(pipeline.markOverdue(now: t0 + .seconds(5)) { _ in nil }.isEmpty, "marked once")
        _ = pipeline.attemptEnded(a[0].token, outcome: .work("late result"), now: t0 + .seconds(2))
        let finished = pipeline.takeFinished(max: 1)
        guard case .failed(let failure) = finished.first?.outcome else { Issue.record("expected a failure"); return }
        #expect(failure.errorClass == StepFailure.timeoutClass)
    }

    @Test func aSilentAttemptIsCancelledAtItsHeartbeatAndTheFirstExpiryIsTheCause() {
        var pipeline = Pipeline(concurrency: 2, timeoutSeconds: 10, heartbeatSeconds: 2)
        let a = pipeline.receive(message("o-1", offset: 0), known: nil, now: t0)
        let token = a[0].token
        #expect(pipeline.markOverdue(now: t0 + .seconds(1)) { _ in 1.5 }.isEmpty)
        #expect(pipeline.markOverdue(now: t0 + .seconds(3)) { $0 == token ? 2.5 : nil }.map(\.failure.errorClass) == [StepFailure.heartbeatTimeoutClass])

        var late = Pipeline(concurrency: 2, timeoutSeconds: 10, heartbeatSeconds: 2)
        _ = late.receive(message("o-2", offset: 0), known: nil, now: t0)
        // Checked late: the timeout expired 1 s ago, the heartbeat only 0.5 s ago.
        #expect(late.markOverdue(now: t0 + .seconds(11)) { _ in 2.5 }.map(\.failure.errorClass) == [StepFailure.timeoutClass])
    }

    @Test func stoppingHandsBackWhatHasNotStartedAndCancelledAttemptsLeaveNoOutcome() {
        var pipeline = Pipeline(concurrency: 1, timeoutSeconds: 10)
        let a = pipeline.receive(message("o-1", offset: 0), known: nil, now: t0)
        _ = pipeline.receive(message("o-2", offset: 1), known: nil, now: t0)
        _ = pipeline.receive(message("o-1", offset: 2), known: nil, now: t0)
        #expect(pipeline.taken == 3)
        #expect(pipeline.stop() == [a[0].token])
        #expect(pipeline.taken == 1, "the waiting messages are handed back")
        #expect(pipeline.attemptEnded(a[0].token, outcome: .work("x"), handedBack: true, now: t0).isEmpty, "nothing starts while stopping")
        #expect(pipeline.taken == 0)
        #expect(!pipeline.hasFinished && pipeline.isIdle)
        #expect(pipeline.takeCommittable().isEmpty, "nothing handed back is committed")
    }

    @Test func offsetsBecomeCommittableOnlyOnceFlushedUpToTheFirstUnflushedMessage() {
        var pipeline = Pipeline(concurrency: 8, timeoutSeconds: 10)
        let launched = (0..<3).flatMap { pipeline.receive(message("o-\($0)", offset: Int64($0)), known: nil, now: t0) }
        _ = pipeline.attemptEnded(launched[1].token, outcome: .work("1"), now: t0)
        _ = pipeline.attemptEnded(launched[2].token, outcome: .work("2"), now: t0)
        pipeline.flushed(pipeline.takeFinished(max: 10))
        #expect(pipeline.takeCommittable().isEmpty, "offset 0 is still running")
        _ = pipeline.attemptEnded(launched[0].token, outcome: .work("0"), now: t0)
        let last = pipeline.takeFinished(max: 10)
        pipeline.handBack(last)
        #expect(pipeline.takeCommittable().isEmpty, "a batch handed back unpublished is not committed")
        #expect(pipeline.taken == 0)
    }

    @Test func finishedOutcomesLeaveInBatchesOldestFirst() {
        var pipeline = Pipeline(concurrency: 8, timeoutSeconds: 10)
        for i in 0..<5 {
            let launch = pipeline.receive(message("o-\(i)", offset: Int64(i)), known: nil, now: t0)
            _ = pipeline.attemptEnded(launch[0].token, outcome: .work("\(i)"), now: t0)
        }
        #expect(pipeline.takeFinished(max: 2).map(\.message.record.offset) == [0, 1])
        #expect(pipeline.takeFinished(max: 10).map(\.message.record.offset) == [2, 3, 4])
    }

    @Test func vipOutcomesLeaveInBatchesOfTheirOwnButInLineOutcomesKeepTheirOrder() {
        var pipeline = Pipeline(concurrency: 8, timeoutSeconds: 10)
        var inLine = Pipeline(concurrency: 8, timeoutSeconds: 10, oneMessagePerOrder: false)
        for (i, vip) in [false, false, true, false, true].enumerated() {
            for p in [0, 1] {
                let launch = p == 0 ? pipeline.receive(message("o-\(i)", offset: Int64(i), vip: vip), known: nil, now: t0)
                    : inLine.receive(message("o-\(i)", offset: Int64(i), vip: vip), known: nil, now: t0)
                if p == 0 { _ = pipeline.attemptEnded(launch[0].token, outcome: .work("\(i)"), now: t0) } else { _ = inLine.attemptEnded(launch[0].token, outcome: .work("\(i)"), now: t0) }
            }
        }
        #expect(pipeline.takeFinished(max: 10, lane: .vip).map(\.message.record.offset) == [2, 4], "the VIP flusher takes VIP outcomes only")
        #expect(pipeline.takeFinished(max: 10, lane: .vip).isEmpty)
        #expect(pipeline.takeFinished(max: 10).map(\.message.record.offset) == [0, 1, 3])
        #expect(inLine.takeFinished(max: 10).map(\.message.record.offset) == [0, 1, 2, 3, 4], "in line: consumption order")
    }

    @Test func aStandardFlusherTakesStandardOutcomesFirstAndVIPOnesOnlyWhenNoStandardOneWaits() {
        var pipeline = Pipeline(concurrency: 8, timeoutSeconds: 10)
        for (i, vip) in [true, false, true].enumerated() {
            let launch = pipeline.receive(message("o-\(i)", offset: Int64(i), vip: vip), known: nil, now: t0)
            _ = pipeline.attemptEnded(launch[0].token, outcome: .work("\(i)"), now: t0)
        }
        #expect(pipeline.takeFinished(max: 10).map(\.message.record.offset) == [1], "never a batch of both lanes")
        #expect(pipeline.takeFinished(max: 10).map(\.message.record.offset) == [0, 2], "then it helps the VIP lane")
    }

    /// A VIP outcome wakes the VIP lane's flusher only, unless that flusher is busy with a
    /// batch; a standard outcome wakes the standard flushers; nothing finished wakes nobody.
    @Test func onlyFlushersWithSomethingToTakeAreWoken() {
        var pipeline = Pipeline(concurrency: 10, timeoutSeconds: 10)
        let v1 = pipeline.receive(message("v-1", offset: 0, vip: true), known: nil, now: t0)
        let v2 = pipeline.receive(message("v-2", offset: 1, vip: true), known: nil, now: t0)
        let s1 = pipeline.receive(message("s-1", offset: 0, partition: 1), known: nil, now: t0)
        #expect(pipeline.flushersToWake == (standard: false, vip: false), "nothing finished")
        _ = pipeline.attemptEnded(v1[0].token, outcome: .work("ok"), now: t0)
        #expect(pipeline.flushersToWake == (standard: false, vip: true))
        #expect(pipeline.takeFinished(max: 10, lane: .vip).count == 1)
        _ = pipeline.attemptEnded(v2[0].token, outcome: .work("ok"), now: t0)
        #expect(pipeline.flushersToWake == (standard: true, vip: true), "the VIP flusher is busy: the standard ones may take it")
        _ = pipeline.takeFinished(max: 10, lane: .vip)
        _ = pipeline.attemptEnded(s1[0].token, outcome: .work("ok"), now: t0)
        #expect(pipeline.flushersToWake == (standard: true, vip: false))
    }

    @Test func finishedVIPOutcomesLeaveAtOnceUnlessMoreVIPWorkIsStillBeingHandled() {
        var pipeline = Pipeline(concurrency: 8, timeoutSeconds: 10)
        let linger = Duration.milliseconds(5)
        #expect(pipeline.vipFlushDue(linger: linger) == nil, "nothing finished")
        let a = pipeline.receive(message("v-1", offset: 0, vip: true), known: nil, now: t0)
        let b = pipeline.receive(message("v-2", offset: 1, vip: true), known: nil, now: t0)
        _ = pipeline.receive(message("s-1", offset: 2), known: nil, now: t0)
        _ = pipeline.attemptEnded(a[0].token, outcome: .work("1"), now: t0 + .milliseconds(1))
        #expect(pipeline.vipFlushDue(linger: linger) == t0 + .milliseconds(6), "v-2 is still being handled: v-1 waits for it a little")
        _ = pipeline.attemptEnded(b[0].token, outcome: .work("2"), now: t0 + .milliseconds(2))
        #expect(pipeline.vipFlushDue(linger: linger) == t0 + .milliseconds(1), "no VIP work left in hand: due at once (a running standard message does not count)")
        let batch = pipeline.takeFinished(max: 10, lane: .vip)
        #expect(batch.count == 2 && pipeline.vipFlushDue(linger: linger) == nil)
        let c = pipeline.receive(message("v-3", offset: 3, vip: true), known: nil, now: t0)
        _ = pipeline.attemptEnded(c[0].token, outcome: .work("3"), now: t0 + .milliseconds(9))
        #expect(pipeline.vipFlushDue(linger: linger) == t0 + .milliseconds(9), "a batch being flushed is not work still being handled")
        pipeline.flushed(batch)
        #expect(pipeline.takenVIP == 1)
    }

    @Test func vipMessagesAreCountedApartUntilFlushedOrHandedBack() {
        var pipeline = Pipeline(concurrency: 1, timeoutSeconds: 10)
        let first = pipeline.receive(message("v-1", offset: 0, vip: true), known: nil, now: t0)
        _ = pipeline.receive(message("s-1", offset: 1), known: nil, now: t0)
        _ = pipeline.receive(message("v-2", offset: 2, vip: true), known: nil, now: t0)
        #expect(pipeline.taken == 3 && pipeline.takenVIP == 2)
        let next = pipeline.attemptEnded(first[0].token, outcome: .work("v-1"), now: t0)
        pipeline.flushed(pipeline.takeFinished(max: 10))
        #expect(pipeline.taken == 2 && pipeline.takenVIP == 1, "a flushed VIP message leaves the VIP budget")
        #expect(next.map(\.message.orderID) == ["v-2"])
        _ = pipeline.stop()
        _ = pipeline.attemptEnded(next[0].token, outcome: .work("x"), handedBack: true, now: t0)
        #expect(pipeline.taken == 0 && pipeline.takenVIP == 0, "handed back: nothing left in either budget")
    }

    @Test func theLaneAMessageWasTakenFromDecidesItsBudgetNotItsHeader() {
        var pipeline = Pipeline(concurrency: 4, timeoutSeconds: 10)
        let headerless = InboundMessage(record: ConsumerRecord(topic: "orders.priority", partition: 0, offset: 0, timestamp: 0, key: Array("v".utf8), value: [], headers: []), lane: .vip)
        let vipHeaderOnStandard = InboundMessage(record: message("s", offset: 0, vip: true).record, lane: .standard)
        #expect(message("x", offset: 0, vip: true).lane == .vip, "without a lane given, the header decides")
        _ = pipeline.receive(headerless, known: nil, now: t0)
        _ = pipeline.receive(vipHeaderOnStandard, known: nil, now: t0)
        #expect(pipeline.taken == 2 && pipeline.takenVIP == 1)
        pipeline.flushed([Pipeline.Finished(token: 0, message: headerless, outcome: .work("v"))])
        #expect(pipeline.takenVIP == 0, "it leaves the budget it was counted in")
    }

    @Test func theFIFOKeepsOrderAcrossCompaction() {
        var fifo = FIFO<Int>()
        var out: [Int] = []
        for i in 0..<5000 {
            fifo.append(i)
            if i % 3 == 0, let x = fifo.popFirst() { out.append(x) }
        }
        while let x = fifo.popFirst() { out.append(x) }
        #expect(out == Array(0..<5000))
        #expect(fifo.count == 0)
    }
}
