/// Header names every saga message carries (../shared/DESIGN.md, "Topics").
public enum SagaHeader {
    public static let sagaID = "saga-id"
    public static let idempotencyKey = "idempotency-key"
    public static let step = "step"
    public static let attempt = "attempt"
    public static let priority = "priority"
    public static let originalTopic = "original-topic"
    public static let originalPartition = "original-partition"
    public static let originalOffset = "original-offset"
    public static let errorClass = "error-class"
    public static let errorMessage = "error-message"
    public static let failedAt = "failed-at"
    /// Why the saga is being compensated (compensation requests).
    public static let reason = "reason"
    /// Steps to undo, comma-separated, in order (compensation requests of a step whose
    /// configuration names its `undo` list; without it every effect is undone, newest first).
    public static let undo = "undo"
    /// Set on a request re-emitted by the watchdog.
    public static let recoveredBy = "recovered-by"
    /// Set on a message put back by `dlq redrive`.
    public static let redriven = "redriven"
    /// On an order's first request: when it was submitted (ms), and where (`topic/partition/offset`).
    public static let createdAt = "created-at"
    public static let sourcePosition = "source-position"
}
