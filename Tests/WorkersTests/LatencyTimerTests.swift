import Testing
@testable import Workers

/// The one timer that ends the simulated calls' latencies: a call waits at least its latency,
/// a cancelled call ends at once, and nothing is left behind either way.
@Suite struct LatencyTimerTests {
    @Test func aCallWaitsAtLeastItsLatency() async throws {
        let timer = LatencyTimer()
        let started = ContinuousClock.now
        try await timer.wait(.milliseconds(30))
        #expect(ContinuousClock.now - started >= .milliseconds(30))
        #expect(timer.waitingCount == 0)
    }

    @Test func manyCallsEachWaitTheirOwnLatency() async throws {
        let timer = LatencyTimer()
        let started = ContinuousClock.now
        let waited = try await withThrowingTaskGroup(of: (Int, Duration).self) { group in
            for call in 0..<500 {
                group.addTask {
                    try await timer.wait(.microseconds(call * 40))
                    return (call, ContinuousClock.now - started)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(waited.count == 500)
        for (call, duration) in waited {
            #expect(duration >= .microseconds(call * 40), "call \(call) ended after \(duration)")
        }
        #expect(timer.waitingCount == 0)
    }

    @Test func cancellingAWaitEndsItAtOnce() async throws {
        let timer = LatencyTimer()
        let waiting = Task { try await timer.wait(.seconds(60)) }
        while timer.waitingCount == 0 { await Task.yield() }
        let cancelled = ContinuousClock.now
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(ContinuousClock.now - cancelled < .seconds(5))
        #expect(timer.waitingCount == 0)
    }

    @Test func aTaskCancelledBeforeItWaitsDoesNotWait() async throws {
        let timer = LatencyTimer()
        let waiting = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await timer.wait(.seconds(60))
        }
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(timer.waitingCount == 0)
    }

    @Test func cancellationsRacingTheTimerLeaveNothingBehind() async throws {
        let timer = LatencyTimer()
        let waits = (0..<300).map { call in Task { try await timer.wait(.microseconds(call % 3 * 1_000)) } }
        for (call, wait) in waits.enumerated() where call % 2 == 0 { wait.cancel() }
        for wait in waits { _ = try? await wait.value }
        #expect(timer.waitingCount == 0)
    }
}
