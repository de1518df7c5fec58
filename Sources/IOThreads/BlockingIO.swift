#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Runs blocking work (a SQLite transaction that fsyncs, a librdkafka call that waits) on
/// threads of its own, never on Swift's cooperative pool. On Linux both the cooperative pool
/// and Dispatch's global queues are as wide as the core count (2 here): two fsyncs or two
/// long polls parked there would stall every task in the process. This is the one way the
/// product runs a blocking call.
public enum BlockingIO {
    /// Eight threads are always there; more are started while every thread is busy (long
    /// polls of many consumers in one process), up to `maximumThreads`.
    private static let pool = BlockingThreadPool(name: "blocking-io", threads: 8, maximumThreads: 256, niceness: 0)
    /// Threads at a lower scheduling priority, for `.background` work.
    private static let backgroundPool = BlockingThreadPool(name: "blocking-bg", threads: 1, maximumThreads: 16, niceness: Priority.backgroundNiceness)

    /// Whose turn it is when the cores are busy.
    public enum Priority: Sendable {
        /// The saga's own work: a step's transaction that an order waits for.
        case normal
        /// Work that may wait while the saga's runs, and has all the idle time otherwise: the
        /// tracker recording history. On a saturated machine it falls behind and catches up
        /// when the load eases, and the orders finish sooner (docs/performance.md). Its
        /// threads run at nice 10 (Linux; elsewhere at the normal priority).
        case background

        /// Linux's nice of the background threads: a weight of 110 against 1,024 at nice 0.
        public static let backgroundNiceness: Int32 = 10
    }

    /// Starts a job without waiting for it.
    public static func submit(_ job: @escaping @Sendable () -> Void) {
        pool.submit(job)
    }

    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await run(.normal, body)
    }

    public static func run<T: Sendable>(_ priority: Priority, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            (priority == .background ? backgroundPool : pool).submit {
                continuation.resume(with: Result { try body() })
            }
        }
    }

    /// Jobs that must not overlap or reorder (the calls on one librdkafka consumer handle):
    /// run on the pool one at a time, in the order they were given.
    public final class SerialLane: Sendable {
        private let pending = Mutex(Lane())

        private struct Lane {
            var jobs: [@Sendable () -> Void] = []
            var running = false
        }

        public init() {}

        public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
            try await withCheckedThrowingContinuation { continuation in
                enqueue { continuation.resume(with: Result { try body() }) }
            }
        }

        /// Queues a job without waiting for it; it runs after every job queued before it.
        public func submit(_ job: @escaping @Sendable () -> Void) {
            enqueue(job)
        }

        private func enqueue(_ job: @escaping @Sendable () -> Void) {
            let start = pending.withLock { lane -> Bool in
                lane.jobs.append(job)
                if lane.running { return false }
                lane.running = true
                return true
            }
            if start { BlockingIO.submit { self.drain() } }
        }

        private func drain() {
            while true {
                let next = pending.withLock { lane -> (@Sendable () -> Void)? in
                    if lane.jobs.isEmpty {
                        lane.running = false
                        return nil
                    }
                    return lane.jobs.removeFirst()
                }
                guard let next else { return }
                next()
            }
        }
    }
}

/// Threads taking jobs from one FIFO queue: a fixed core, and more while all are busy.
private final class BlockingThreadPool: @unchecked Sendable {
    // Safe: every stored var below is only touched while holding `mutex`.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var threads = 0
    /// Threads waiting for a job, or started and about to.
    private var idle = 0
    private let maximumThreads: Int
    private let name: String
    private let niceness: Int32

    init(name: String, threads: Int, maximumThreads: Int, niceness: Int32) {
        self.name = name
        self.maximumThreads = maximumThreads
        self.niceness = niceness
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        pthread_mutex_lock(&mutex)
        for _ in 0..<threads { startThread() }
        pthread_mutex_unlock(&mutex)
    }

    /// Called with `mutex` held.
    private func startThread() {
        threads += 1
        idle += 1
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw -> UnsafeMutableRawPointer? in
            // The pool's threads live as long as the process: `work()` never returns.
            Unmanaged<BlockingThreadPool>.fromOpaque(raw!).takeRetainedValue().work()
        }, box.toOpaque())
        pthread_detach(thread)
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        // Every thread busy with a job that may block for long: one more, so this job
        // does not wait behind them (a waiting job may be what they wait for).
        if jobs.count - head > idle && threads < maximumThreads { startThread() }
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    private func work() -> Never {
        ThreadName.set(name)
        #if os(Linux)
        // Linux keeps the nice value per thread, and `who` 0 is the calling thread. Never
        // set back: an unprivileged process may lower its priority but not raise it again.
        if niceness != 0 { setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness) }
        #endif
        pthread_mutex_lock(&mutex)
        while true {
            while head == jobs.count { pthread_cond_wait(&condition, &mutex) }
            idle -= 1
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            pthread_mutex_unlock(&mutex)
            job()
            pthread_mutex_lock(&mutex)
            idle += 1
        }
    }
}

/// Names the calling thread (`top -H`, `perf report --sort comm`, `/proc/PID/task/*/comm`).
/// A thread started with `pthread_create` takes its creator's name, often a Dispatch
/// queue's, so the product's own threads looked like Swift's pool in a profile.
public enum ThreadName {
    /// At most 15 bytes are kept.
    public static func set(_ name: String) {
        #if os(Linux)
        let comm = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard comm >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(comm, $0.baseAddress, $0.count) }
        close(comm)
        #endif
    }
}
