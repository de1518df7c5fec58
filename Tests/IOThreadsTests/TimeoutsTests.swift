@testable import IOThreads
import Synchronization
import Testing

/// The timeouts thread behind every timed wait: a timeout fires once its deadline has passed
/// and not before, a cancelled one never fires, and an earlier deadline scheduled while the
/// thread sleeps until a later one is not kept waiting for it.
@Suite struct TimeoutsTests {
    final class Fired: Sendable {
        let at = Mutex<[Int: ContinuousClock.Instant]>([:])
        func note(_ i: Int) { at.withLock { $0[i] = .now } }
        var count: Int { at.withLock { $0.count } }
    }

    @Test func timeoutsFireAfterTheirDeadlineAndCancelledOnesNever() async throws {
        let timeouts = Timeouts()
        let fired = Fired()
        let start = ContinuousClock.now
        // Scheduled out of order; every other one cancelled.
        var deadlines: [Int: ContinuousClock.Instant] = [:]
        var tokens: [Int: UInt64] = [:]
        for i in [5, 1, 9, 3, 7, 0, 8, 2, 6, 4] {
            let deadline = start + .milliseconds(20 + 10 * i)
            deadlines[i] = deadline
            tokens[i] = timeouts.schedule(at: deadline) { fired.note(i) }
        }
        for i in stride(from: 1, to: 10, by: 2) { timeouts.cancel(tokens[i]!) }
        let deadline = ContinuousClock.now + .seconds(10)
        while fired.count < 5, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(150))
        let at = fired.at.withLock { $0 }
        #expect(Set(at.keys) == [0, 2, 4, 6, 8], "the cancelled ones never fire")
        for (i, when) in at {
            #expect(when >= deadlines[i]!, "timeout \(i) fired \(deadlines[i]! - when) before its deadline")
        }
        #expect(timeouts.pending == 0)
    }

    @Test func anEarlierDeadlineWakesTheThreadSleepingUntilALaterOne() async throws {
        let timeouts = Timeouts()
        let fired = Fired()
        _ = timeouts.schedule(at: .now + .seconds(30)) { fired.note(1) }
        try await Task.sleep(for: .milliseconds(20))
        let start = ContinuousClock.now
        _ = timeouts.schedule(at: start + .milliseconds(10)) { fired.note(2) }
        let deadline = start + .seconds(10)
        while fired.count < 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let at = fired.at.withLock { $0 }
        #expect(at.keys.sorted() == [2])
        if let when = at[2] { #expect(when - start < .seconds(5), "fired after \(when - start), not at the 30 s deadline") }
    }

    @Test func aDeadlineAlreadyPastFiresAtOnce() async throws {
        let timeouts = Timeouts()
        let fired = Fired()
        _ = timeouts.schedule(at: .now - .seconds(1)) { fired.note(0) }
        let deadline = ContinuousClock.now + .seconds(10)
        while fired.count < 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(fired.count == 1)
    }

    /// A deadline centuries away (a wait with no real limit) is scheduled, never fires, and
    /// does not keep an earlier one from firing.
    @Test func aDeadlineFarAwayNeverFiresAndDelaysNothing() async throws {
        let timeouts = Timeouts()
        let fired = Fired()
        let far = timeouts.schedule(at: .now + .seconds(Int64.max / 2)) { fired.note(1) }
        _ = timeouts.schedule(at: .now + .milliseconds(10)) { fired.note(2) }
        let deadline = ContinuousClock.now + .seconds(10)
        while fired.count < 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(fired.at.withLock { $0.keys.sorted() } == [2])
        timeouts.cancel(far)
        #expect(timeouts.pending == 0)
    }

    @Test func theHeapGivesDeadlinesEarliestFirst() {
        var heap = DeadlineHeap()
        let dues: [UInt64] = [50, 10, 40, 10, 30, 20, 60, 0, 70, 5]
        for (token, due) in dues.enumerated() { heap.push(due: due, token: UInt64(token)) }
        var out: [UInt64] = []
        while let first = heap.first {
            out.append(first.due)
            heap.pop()
        }
        #expect(out == dues.sorted())
    }
}
