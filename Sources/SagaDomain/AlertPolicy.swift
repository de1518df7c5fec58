/// The alert thresholds (`alerts:` in config/fulfillment.yaml), with the seed's values as
/// defaults. One source of truth for both evaluators: `fulfillment alerts rules` renders
/// them as a Prometheus rule file, and `run` evaluates the same thresholds in process.
/// A threshold set to `off` in YAML (nil here) leaves its alert out.
public struct AlertPolicy: Hashable, Sendable {
    /// The window rates and quantiles are taken over.
    public var windowSeconds: Double = 300
    /// How long a rate-based condition must hold before its alert fires.
    public var forSeconds: Double = 60
    /// How often `run` evaluates the thresholds in process.
    public var evaluationIntervalSeconds: Double = 15
    /// Completed ÷ (completed + compensated) over the window.
    public var successRateBelow: Double? = 0.99
    /// Orders dead-lettered at the inventory step ÷ orders accepted, over the window.
    public var reserveFailureRateAbove: Double? = 0.05
    /// Retries ÷ attempts of a step, over the window.
    public var retryRateAbove: Double? = 0.05
    /// Attempts of a step that timed out or missed their heartbeat, over the window (0: any).
    public var stepTimeoutsAbove: Double? = 0
    /// Fires when a dead-letter topic's pending (not redriven) letters grew over the window.
    public var deadLettersPendingGrowing = true
    /// Orders parked in manual review (0: any).
    public var manualReviewAbove: Double? = 0
    /// p99 of completed orders' end-to-end latency, per tier, over the window.
    public var vipP99SecondsAbove: Double? = 120
    public var standardP99SecondsAbove: Double? = 300
    /// Orders the watchdog recovered in the last hour.
    public var stuckOrdersPerHourAbove: Double? = 5
    /// Records a consumer group has not consumed yet (summed over its topics).
    public var consumerLagAbove: Double? = 100_000

    public init() {}
}
