import CoreMetrics

/// What one step's worker runtime records: each attempt's result and duration, and the
/// retries it schedules per customer tier.
public struct StepMetrics: Sendable {
    /// How an attempt ended, as `fulfillment_step_attempts_total{result}` says it.
    public enum Result: String, CaseIterable, Sendable {
        case ok
        /// Failed with an error its policy retries (whether retries remained or not).
        case retryable
        case nonRetryable = "non_retryable"
        case timeout
        case heartbeatMissed = "heartbeat_missed"
    }

    public let step: String
    private let attempts: [Result: Counter]
    private let duration: CoreMetrics.Timer
    private let retriesByTier: [String: Counter]
    private let duplicates: Counter

    public init(step: String, handles: MetricHandles) {
        self.step = step
        attempts = Dictionary(uniqueKeysWithValues: Result.allCases.map { ($0, handles.counter(MetricCatalogue.stepAttempts, [step, $0.rawValue])) })
        duration = handles.timer(MetricCatalogue.stepDuration, [step])
        duplicates = handles.counter(MetricCatalogue.duplicates, [step])
        retriesByTier = Dictionary(uniqueKeysWithValues: ["vip", "standard"].map { ($0, handles.counter(MetricCatalogue.retries, [step, $0])) })
    }

    public func attempt(_ result: Result) { attempts[result]!.increment() }

    public func attemptTook(_ elapsed: Duration) {
        let (seconds, attoseconds) = elapsed.components
        duration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// A message handled before: its recorded outcome is published again.
    public func duplicate(_ count: Int = 1) { duplicates.increment(by: count) }

    /// `tier`: `vip` or `standard`.
    public func retried(tier: String) { (retriesByTier[tier] ?? retriesByTier["standard"]!).increment() }
}
