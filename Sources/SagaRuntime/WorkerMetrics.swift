import Synchronization

/// Counters of one worker, read by the progress line, `stats` and the run summary.
public final class WorkerMetrics: Sendable {
    public let name: String
    private let counters = Mutex<[String: Int]>([:])

    public init(name: String) { self.name = name }

    public func add(_ key: String, _ n: Int = 1) {
        counters.withLock { $0[key, default: 0] += n }
    }

    public subscript(key: String) -> Int { counters.withLock { $0[key] ?? 0 } }

    public var snapshot: [String: Int] { counters.withLock { $0 } }

    public static let handled = "handled"
    public static let succeeded = "succeeded"
    public static let reemitted = "reemitted"
    public static let retried = "retried"
    public static let deadLettered = "dead_lettered"
    public static let timedOut = "timed_out"
    public static let heartbeatMissed = "heartbeat_missed"
    /// Records set aside on `<topic>.poison`.
    public static let quarantined = "quarantined"
}
