/// One retrier, with Amazon States Language's fields (`Retry` of a Task state).
public struct RetryRule: Codable, Hashable, Sendable {
    /// Error classes this rule applies to; `States.ALL` matches every retryable error.
    public var errorEquals: [String]
    public var intervalSeconds: Double
    /// Retries after the first attempt (ASL semantics: 3 means up to 4 attempts).
    public var maxAttempts: Int
    public var backoffRate: Double
    public var maxDelaySeconds: Double?
    public var jitter: Jitter

    public enum Jitter: String, Codable, Hashable, Sendable {
        case full
        case none
    }

    public init(errorEquals: [String], intervalSeconds: Double, maxAttempts: Int, backoffRate: Double = 2, maxDelaySeconds: Double? = nil, jitter: Jitter = .none) {
        self.errorEquals = errorEquals
        self.intervalSeconds = intervalSeconds
        self.maxAttempts = maxAttempts
        self.backoffRate = backoffRate
        self.maxDelaySeconds = maxDelaySeconds
        self.jitter = jitter
    }

    public func matches(_ errorClass: String) -> Bool {
        errorEquals.contains(errorClass) || errorEquals.contains("States.ALL")
    }

    /// The nominal delay before retry `n` (1-based): interval x backoff^(n-1), capped.
    public func delaySeconds(retry n: Int) -> Double {
        var delay = intervalSeconds
        for _ in 1..<max(1, n) { delay *= backoffRate }
        if let cap = maxDelaySeconds { delay = min(delay, cap) }
        return delay
    }
}

/// Where a step goes once its retries are exhausted.
public enum ExhaustedAction: String, Codable, Hashable, Sendable {
    /// Dead-letter topic, whose consumer compensates the order (the default).
    case compensate
    /// Dead-letter topic, and the order is parked in manual review instead of compensated.
    case park
}

/// Retry, timeout and compensation policy of one step (../shared/DESIGN.md, "Retry, timeout, compensation policy").
public struct StepPolicy: Codable, Hashable, Sendable {
    public var retry: [RetryRule]
    public var timeoutSeconds: Double
    public var heartbeatSeconds: Double?
    public var nonRetryable: [String]
    public var onExhausted: ExhaustedAction
    /// `compensate_on`: the error classes that compensate the order when this step gives up
    /// (retries exhausted or non-retryable); `States.ALL` matches every class. Any other class
    /// parks the order in `orders.manual-review`: the Kafka analogue of a Step Functions error
    /// no `Catch` handles, which fails the execution and leaves its effects in place. Parking
    /// loses nothing and puts an operator in front of it. Only read when `onExhausted` is
    /// `.compensate` (`park` parks whatever the error).
    public var compensateOn: [String]
    /// `undo`: the effects undone, in this order, when a failure here is compensated; `nil`
    /// means the step's `SagaStep.undoOrderOnFailure` (itself and every earlier step, newest
    /// first). Never holds `.notification`: a sent notification cannot be unsent.
    public var undo: [SagaStep]?

    /// `compensate_on`'s default: every error compensates.
    public static let compensateOnEveryError = ["States.ALL"]

    public init(retry: [RetryRule] = [], timeoutSeconds: Double = 300, heartbeatSeconds: Double? = nil, nonRetryable: [String] = [], onExhausted: ExhaustedAction = .compensate, compensateOn: [String] = StepPolicy.compensateOnEveryError, undo: [SagaStep]? = nil) {
        self.retry = retry
        self.timeoutSeconds = timeoutSeconds
        self.heartbeatSeconds = heartbeatSeconds
        self.nonRetryable = nonRetryable
        self.onExhausted = onExhausted
        self.compensateOn = compensateOn
        self.undo = undo
    }

    /// Whether giving up with `errorClass` compensates the order (rather than parking it).
    public func compensates(_ errorClass: String) -> Bool {
        onExhausted == .compensate && (compensateOn.contains(errorClass) || compensateOn.contains("States.ALL"))
    }

    /// The rule that retries `errorClass`, unless it is non-retryable.
    public func rule(for errorClass: String) -> RetryRule? {
        guard !nonRetryable.contains(errorClass) else { return nil }
        return retry.first { $0.matches(errorClass) }
    }

    /// How many retry-tier topics this step needs: the longest retry chain of any rule.
    public var retryTiers: Int { retry.map(\.maxAttempts).max() ?? 0 }

    /// The delay of tier `n` as a topic property: the longest any rule waits before retry `n`.
    public func tierDelaySeconds(_ n: Int) -> Double {
        retry.filter { $0.maxAttempts >= n }.map { $0.delaySeconds(retry: n) }.max() ?? 0
    }

    /// What to do after `attempt` (1-based) failed with `errorClass`.
    public func decision(afterAttempt attempt: Int, errorClass: String, random: Double) -> RetryDecision {
        guard let rule = rule(for: errorClass) else { return .deadLetter(exhausted: false) }
        let retryNumber = attempt
        guard retryNumber <= rule.maxAttempts else { return .deadLetter(exhausted: true) }
        let nominal = rule.delaySeconds(retry: retryNumber)
        let delay = rule.jitter == .full ? nominal * random : nominal
        return .retry(tier: retryNumber, delaySeconds: delay)
    }

    /// The longest an order can legitimately spend in this step: every attempt running to
    /// its timeout plus every retry delay (the seed's 60+2+60+4+60 arithmetic).
    public var budgetSeconds: Double {
        let worst = retry.max { $0.maxAttempts < $1.maxAttempts }
        let retries = worst?.maxAttempts ?? 0
        let delays = (0..<retries).reduce(0.0) { $0 + (worst?.delaySeconds(retry: $1 + 1) ?? 0) }
        return Double(retries + 1) * timeoutSeconds + delays
    }
}

public enum RetryDecision: Equatable, Sendable {
    case retry(tier: Int, delaySeconds: Double)
    /// `exhausted`: retries ran out (as opposed to a non-retryable error).
    case deadLetter(exhausted: Bool)
}
