import IOThreads
import Synchronization

/// A wake-up that is remembered if nobody waits yet, so a signal is never lost. A signal
/// wakes every current waiter; each waiter's timeout wakes only that waiter.
public final class Signal: Sendable {
    private struct State {
        var pending = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        /// The waits not returned yet, parked or about to park.
        var live: Set<Int> = []
        /// Live waits whose timeout fired before they parked.
        var expired: Set<Int> = []
    }

    private let state = Mutex(State())

    public init() {}

    public func signal() {
        let woken: [CheckedContinuation<Void, Never>] = state.withLock { state in
            if state.waiters.isEmpty {
                state.pending = true
                return []
            }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns at the next signal (or at once if one is pending), or after `timeout`.
    public func wait(timeout: Duration) async {
        let id: Int? = state.withLock { state in
            if state.pending {
                state.pending = false
                return nil
            }
            state.nextID += 1
            state.live.insert(state.nextID)
            return state.nextID
        }
        guard let id else { return }
        let timer = Timeouts.shared.schedule(at: .now + timeout) { self.expire(id) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.pending || state.expired.remove(id) != nil {
                    state.pending = false
                    return true
                }
                state.waiters[id] = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
        Timeouts.shared.cancel(timer)
        state.withLock { state in
            state.live.remove(id)
            state.expired.remove(id)
        }
    }

    /// A timeout's end. It may come after its wait returned (a signal can win the race with
    /// the timeout, which fires while the wait is cancelling it): then there is nothing to
    /// wake or to mark, and marking it would keep its id in `expired` for good, one per
    /// signalled wait.
    private func expire(_ id: Int) {
        let continuation: CheckedContinuation<Void, Never>? = state.withLock { state in
            if let continuation = state.waiters.removeValue(forKey: id) { return continuation }
            if state.live.contains(id) { state.expired.insert(id) }
            return nil
        }
        continuation?.resume()
    }

    /// Ids kept for waits (for tests: none once every wait has returned and its timer ended).
    var idsKept: Int { state.withLock { $0.live.count + $0.expired.count + $0.waiters.count } }
}
