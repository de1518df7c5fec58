import Synchronization

/// Ends the simulated calls' latencies from one timer instead of one per call.
///
/// `Task.sleep` arms a timer per call, and each firing wakes a thread on its own. A shipment
/// sleeps three times (pick, pack, label), so at a few thousand orders a second the default
/// fault profile's 1-5 ms latencies meant over ten thousand timers a second, and the run spent
/// about a third more CPU than one without latency (`docs/performance.md`). A real gateway's
/// answers arrive on an event loop that wakes once for whatever came in; this does the same:
/// while calls wait, one task wakes every `tick` and resumes every call that is due.
///
/// A call waits at least its latency and at most about one tick more. Cancelling the waiting
/// task ends its wait at once with `CancellationError` (steps' timeouts and heartbeats rely
/// on that).
final class LatencyTimer: Sendable {
    static let tick = Duration.milliseconds(1)

    private struct Waiter {
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var nextID = 0
        /// Waits begun and not yet registered: a cancellation that comes in between is noted
        /// in `cancelledBeforeRegistering`, so it cannot be lost nor outlive its wait.
        var starting: Set<Int> = []
        var cancelledBeforeRegistering: Set<Int> = []
        var waiting: [Int: Waiter] = [:]
        var ticking = false
    }

    private let state = Mutex(State())

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
                enum Registered { case cancelled, waiting, startTicking }
                let registered = state.withLock { state -> Registered in
                    state.starting.remove(id)
                    if state.cancelledBeforeRegistering.remove(id) != nil { return .cancelled }
                    state.waiting[id] = Waiter(deadline: deadline, continuation: continuation)
                    if state.ticking { return .waiting }
                    state.ticking = true
                    return .startTicking
                }
                switch registered {
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting: break
                // High priority whoever starts it: a VIP call's latency must not end late
                // because the ticker waits behind the standard work queued on the pool.
                case .startTicking: Task(priority: .high) { await self.tickWhileWaiting() }
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                if let waiter = state.waiting.removeValue(forKey: id) { return waiter }
                if state.starting.contains(id) { state.cancelledBeforeRegistering.insert(id) }
                return nil
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Calls waiting now (for tests).
    var waitingCount: Int { state.withLock { $0.waiting.count + $0.starting.count + $0.cancelledBeforeRegistering.count } }

    /// Resumes the calls that are due, every tick, until none waits.
    private func tickWhileWaiting() async {
        while true {
            try? await Task.sleep(for: Self.tick)
            let now = ContinuousClock.now
            let due = state.withLock { state -> [Waiter]? in
                if state.waiting.isEmpty {
                    state.ticking = false
                    return nil
                }
                let dueIDs = state.waiting.compactMap { $0.value.deadline <= now ? $0.key : nil }
                return dueIDs.compactMap { state.waiting.removeValue(forKey: $0) }
            }
            guard let due else { return }
            for waiter in due { waiter.continuation.resume() }
        }
    }
}
