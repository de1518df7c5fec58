import Testing
@testable import SagaRuntime

/// The runtime's wake-ups: a signal is never lost, a timeout wakes its waiter, and a wait
/// leaves nothing behind once it has returned (the runtime waits thousands of times a second).
@Suite struct SignalTests {
    @Test func aSignalBeforeTheWaitIsKept() async {
        let signal = Signal()
        signal.signal()
        let start = ContinuousClock.now
        await signal.wait(timeout: .seconds(30))
        #expect(ContinuousClock.now - start < .seconds(10), "the pending signal ends the wait at once")
    }

    @Test func aTimeoutWakesItsWaiter() async {
        let signal = Signal()
        await signal.wait(timeout: .milliseconds(20))
        #expect(signal.idsKept == 0)
    }

    @Test func waitsEndedBySignalsLeaveNothingBehind() async throws {
        let signal = Signal()
        for _ in 0..<200 {
            async let waited: Void = signal.wait(timeout: .seconds(30))
            // Once the wait has its id (and its timer), not before: a signal with no wait
            // under way is kept as pending and the next wait returns without either.
            while signal.idsKept == 0 { await Task.yield() }
            signal.signal()
            await waited
        }
        // The cancelled timers end on their own time: give them a moment.
        for _ in 0..<100 where signal.idsKept > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(signal.idsKept == 0, "every wait's id is gone once it returned and its timer ended")
    }
}
