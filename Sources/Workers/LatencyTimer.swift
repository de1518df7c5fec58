import IOThreads
import Synchronization

/// Ends the simulated calls' latencies from the process's one timeouts thread
/// (`IOThreads.Timeouts`) instead of a timer per call.
///
/// `Task.sleep` arms a timer per call, and each firing wakes a thread on its own. A shipment
/// sleeps three times (pick, pack, label), so at a few thousand orders a second the default
/// fault profile's 1-5 ms latencies meant over ten thousand timers a second, and the run spent
/// about a third more CPU than one without latency (`docs/performance.md`). A real gateway's
/// answers arrive on an event loop that wakes once for whatever came in; the timeouts thread
/// does the same: it sleeps to the first deadline (plus its slack) and resumes every call due.
/// (Until 2026-12-07 a task of its own woke every millisecond with `Task.sleep` while calls
/// waited, and looked through every waiting call at each tick.)
///
/// A call waits at least its latency and at most about a millisecond more. Cancelling the
/// waiting task ends its wait at once with `CancellationError` (steps' timeouts and heartbeats
/// rely on that).
final class LatencyTimer: Sendable {
    private struct Waiter {
        let continuation: CheckedContinuation<Void, any Error>
        /// The timeout that ends the wait, once scheduled.
        var timeout: UInt64?
    }

    private struct State {
        var nextID = 0
        /// Waits begun and not yet registered: a cancellation that comes in between is noted
        /// in `cancelledBeforeRegistering`, so it cannot be lost nor outlive its wait.
        var starting: Set<Int> = []
        var cancelledBeforeRegistering: Set<Int> = []
        var waiting: [Int: Waiter] = [:]
    }

    private let state = Mutex(State())
    private let timeouts = Timeouts.shared

    /// Waits for `duration`, or until the calling task is cancelled.
    func wait(_ duration: Duration) async throws {
        let deadline = ContinuousClock.now + duration
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.starting.insert(state.nextID)
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    state.starting.remove(id)
                    if state.cancelledBeforeRegistering.remove(id) != nil { return true }
                    state.waiting[id] = Waiter(continuation: continuation)
                    return false
                }
                if cancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                let timeout = timeouts.schedule(at: deadline) { [self] in
                    state.withLock { $0.waiting.removeValue(forKey: id) }?.continuation.resume()
                }
                // Kept so a cancelled wait takes its timeout out of the heap; a wait that
                // ended meanwhile (due at once, or cancelled) has nothing to keep it for.
                state.withLock { $0.waiting[id]?.timeout = timeout }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                if let waiter = state.waiting.removeValue(forKey: id) { return waiter }
                if state.starting.contains(id) { state.cancelledBeforeRegistering.insert(id) }
                return nil
            }
            if let timeout = waiter?.timeout { timeouts.cancel(timeout) }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Calls waiting now (for tests).
    var waitingCount: Int { state.withLock { $0.waiting.count + $0.starting.count + $0.cancelledBeforeRegistering.count } }
}
