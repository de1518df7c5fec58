#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The timeouts of timed waits (a long poll parked on its partitions, a flusher waiting for
/// work), fired by one thread. Each such wait used to start a task that slept: a task, a
/// Dispatch timer, and a job when the timer fired or the task was cancelled, for every wait.
/// An idle saga made about 2,000 of them a second, and a record travelling alone two or
/// three at every hop. Here a timeout is an entry in a heap; one that is cancelled (the wait
/// ended first, as most do) is only forgotten, and its deadline wakes the thread at most once.
///
/// An action runs on this thread and must be short: it resumes a continuation, no more.
public final class Timeouts: @unchecked Sendable {
    // Safe: every stored var below is read and written only while holding `mutex`.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var heap = DeadlineHeap()
    private var actions: [UInt64: @Sendable () -> Void] = [:]
    private var nextToken: UInt64 = 0
    /// When the sleeping thread wakes (monotonic ns: its first deadline plus the slack), or
    /// `UInt64.max` when it sleeps until told or is not sleeping.
    private var sleepingUntil = UInt64.max

    /// The process's timeouts thread.
    public static let shared = Timeouts()

    /// The thread sleeps this much past the first deadline, so the timeouts due meanwhile
    /// fire in the same wake (a cluster of polls parked at about the same time).
    static let slackNanoseconds: UInt64 = 1_000_000

    init() {
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
        pthread_mutex_init(&mutex, nil)
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<Timeouts>.fromOpaque(raw!).takeRetainedValue()
            ThreadName.set("timeouts")
            me.runLoop()
            return nil
        }, box.toOpaque())
        pthread_detach(thread)
    }

    /// Runs `action` on the timeouts thread once `deadline` has passed, unless `cancel`led
    /// first. Returns the token to cancel it with.
    public func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let (seconds, attoseconds) = (deadline - ContinuousClock.now).components
        // A century at most: further off is never, and stays clear of overflow.
        let nanoseconds: UInt64 = seconds < 0 ? 0 : UInt64(min(seconds, 3_155_760_000)) * 1_000_000_000 + UInt64(max(0, attoseconds / 1_000_000_000))
        let due = Self.monotonicNanoseconds() + nanoseconds
        pthread_mutex_lock(&mutex)
        nextToken += 1
        let token = nextToken
        actions[token] = action
        heap.push(due: due, token: token)
        // Only a deadline before the wake the thread sleeps until needs it awake earlier.
        if due &+ Self.slackNanoseconds < sleepingUntil { pthread_cond_signal(&condition) }
        pthread_mutex_unlock(&mutex)
        return token
    }

    /// Forgets a timeout that has not fired. Does nothing when it has fired already.
    public func cancel(_ token: UInt64) {
        pthread_mutex_lock(&mutex)
        actions[token] = nil
        pthread_mutex_unlock(&mutex)
    }

    /// Timeouts scheduled and not yet fired or cancelled (for tests).
    var pending: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return actions.count
    }

    private func runLoop() {
        pthread_mutex_lock(&mutex)
        while true {
            // Entries whose wait ended first are dropped without waking anyone.
            while let top = heap.first, actions[top.token] == nil { heap.pop() }
            guard let top = heap.first else {
                sleepingUntil = .max
                pthread_cond_wait(&condition, &mutex)
                continue
            }
            let now = Self.monotonicNanoseconds()
            if top.due > now {
                // Woken a little after the first deadline, it fires every timeout due by then
                // at once; none fires before its deadline.
                let wake = top.due &+ Self.slackNanoseconds
                sleepingUntil = wake
                var until = timespec(tv_sec: Int(wake / 1_000_000_000), tv_nsec: Int(wake % 1_000_000_000))
                pthread_cond_timedwait(&condition, &mutex, &until)
                continue
            }
            sleepingUntil = .max
            var due: [@Sendable () -> Void] = []
            while let next = heap.first, next.due <= now {
                heap.pop()
                if let action = actions.removeValue(forKey: next.token) { due.append(action) }
            }
            pthread_mutex_unlock(&mutex)
            for action in due { action() }
            pthread_mutex_lock(&mutex)
        }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }
}

/// A binary min-heap of (due, token), earliest first.
struct DeadlineHeap {
    private var entries: [(due: UInt64, token: UInt64)] = []

    var first: (due: UInt64, token: UInt64)? { entries.first }

    mutating func push(due: UInt64, token: UInt64) {
        entries.append((due, token))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].due < entries[parent].due else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        guard !entries.isEmpty else { return }
        entries.swapAt(0, entries.count - 1)
        entries.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < entries.count && entries[left].due < entries[smallest].due { smallest = left }
            if right < entries.count && entries[right].due < entries[smallest].due { smallest = right }
            guard smallest != parent else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
