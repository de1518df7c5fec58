/// Idempotency keys: `<order_id>:<step>`, compensations `<order_id>:<step>:undo`; never
/// attempt- or run-specific, so every redelivery maps to the same effect.
public enum IdempotencyKey {
    public static func step(_ orderID: String, _ step: SagaStep) -> String { "\(orderID):\(step.rawValue)" }
    public static func undo(_ orderID: String, _ step: SagaStep) -> String { "\(orderID):\(step.rawValue):undo" }
    public static func compensation(_ orderID: String) -> String { "\(orderID):compensation" }
    public static func failureNotice(_ orderID: String) -> String { "\(orderID):notification:failure" }
}
