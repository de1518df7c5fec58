import IOThreads
import Synchronization

/// A one-shot wake-up: a long poll parks on it until data arrives, a rebalance needs it, or
/// its deadline passes, without spinning.
final class Waiter: Sendable {
    private enum State {
        case idle
        case waiting(CheckedContinuation<Void, Never>)
        case signaled
    }

    private let state = Mutex<State>(.idle)

    func signal() {
        let continuation: CheckedContinuation<Void, Never>? = state.withLock { state in
            switch state {
            case .idle:
                state = .signaled
                return nil
            case .waiting(let continuation):
                state = .signaled
                return continuation
            case .signaled:
                return nil
            }
        }
        continuation?.resume()
    }

    var isSignaled: Bool {
        state.withLock { if case .signaled = $0 { return true } else { return false } }
    }

    /// Returns once signalled, at `deadline`, or when the task is cancelled.
    func wait(until deadline: ContinuousClock.Instant) async {
        if isSignaled { return }
        let timer = Timeouts.shared.schedule(at: deadline) { [self] in signal() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if case .signaled = state { return true }
                    state = .waiting(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
        Timeouts.shared.cancel(timer)
    }
}
