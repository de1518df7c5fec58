import CoreMetrics
import FulfillmentMetrics

/// What one worker runtime records: for a step (and the compensation) each attempt's
/// result and duration and the retries it schedules; for every role the records it sends
/// to a dead-letter or `.poison` topic.
public struct RuntimeMetrics: Sendable {
    public var step: StepMetrics?
    /// By topic.
    public var deadLetters: HandleFamily<Counter>

    public init(step: StepMetrics?, deadLetters: HandleFamily<Counter>) {
        self.step = step
        self.deadLetters = deadLetters
    }

    /// No backend: nothing recorded (tests that host a runtime alone).
    public static var disabled: RuntimeMetrics {
        RuntimeMetrics(step: nil, deadLetters: HandleFamily { MetricHandles.disabled.counter(MetricCatalogue.deadLetters, $0) })
    }
}
