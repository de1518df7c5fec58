#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs blocking work (a SQLite transaction that fsyncs) on threads of its own, never on
/// Swift's cooperative pool. On Linux both the cooperative pool and Dispatch's global queues
/// are as wide as the core count (2 here): two fsyncs parked there would stall every task in
/// the process. A fixed set of plain threads takes the jobs instead.
public enum BlockingIO {
    private static let pool = BlockingThreadPool(threads: 8)

    /// Starts a job without waiting for it.
    public static func submit(_ job: @escaping @Sendable () -> Void) {
        pool.submit(job)
    }

    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            pool.submit {
                continuation.resume(with: Result { try body() })
            }
        }
    }
}

/// A fixed number of threads taking jobs from one FIFO queue.
private final class BlockingThreadPool: @unchecked Sendable {
    // Safe: `jobs` is only touched while holding `mutex`.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0

    init(threads: Int) {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        for _ in 0..<threads {
            let box = Unmanaged.passRetained(self)
            var thread = pthread_t()
            pthread_create(&thread, nil, { raw -> UnsafeMutableRawPointer? in
                // The pool's threads live as long as the process: `work()` never returns.
                Unmanaged<BlockingThreadPool>.fromOpaque(raw!).takeRetainedValue().work()
            }, box.toOpaque())
            pthread_detach(thread)
        }
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    private func work() -> Never {
        while true {
            pthread_mutex_lock(&mutex)
            while head == jobs.count { pthread_cond_wait(&condition, &mutex) }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            pthread_mutex_unlock(&mutex)
            job()
        }
    }
}
