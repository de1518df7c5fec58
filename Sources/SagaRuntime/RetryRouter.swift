import Messaging
import SagaDomain

/// Where a failed attempt goes: the next retry tier (after the policy's delay) or the
/// dead-letter topic, with the failure headers of ../shared/DESIGN.md. Pure: no I/O, injected clock
/// and randomness.
public struct RetryRouter: Sendable {
    public let policy: StepPolicy
    /// Retry tier `n` topic name.
    public let retryTopic: @Sendable (Int) -> String
    public let deadLetterTopic: String

    public init(policy: StepPolicy, retryTopic: @escaping @Sendable (Int) -> String, deadLetterTopic: String) {
        self.policy = policy
        self.retryTopic = retryTopic
        self.deadLetterTopic = deadLetterTopic
    }

    /// The record to publish for a failed attempt of `message`.
    public func route(_ message: InboundMessage, failure: StepFailure, now: Int64, random: Double) -> ProducerRecord {
        let decision = failure.errorClass == StepFailure.malformedClass || failure.errorClass == PoisonRecord.errorClass
            ? .deadLetter(exhausted: false)
            : policy.decision(afterAttempt: message.attempt, errorClass: failure.errorClass, random: random)
        switch decision {
        case .retry(let tier, let delaySeconds):
            let headers = FailureHeaders.make(from: message, errorClass: failure.errorClass, errorMessage: failure.message, failedAt: now, attempt: message.attempt + 1)
            // The tier topic holds records for its nominal delay after their timestamp; a
            // jittered (shorter) delay is expressed by back-dating the timestamp.
            let tierDelay = Int64((policy.tierDelaySeconds(tier) * 1000).rounded())
            let wanted = Int64((delaySeconds * 1000).rounded())
            return ProducerRecord(
                topic: retryTopic(tier), key: message.record.key, value: message.record.value, headers: headers,
                timestamp: now - max(0, tierDelay - wanted))
        case .deadLetter(let exhausted):
            var headers = FailureHeaders.make(from: message, errorClass: failure.errorClass, errorMessage: failure.message, failedAt: now, attempt: message.attempt)
            headers.append(RecordHeader("retries-exhausted", exhausted ? "true" : "false"))
            headers.append(RecordHeader("on-exhausted", policy.onExhausted.rawValue))
            return ProducerRecord(topic: deadLetterTopic, key: message.record.key, value: message.record.value, headers: headers, timestamp: now)
        }
    }
}
