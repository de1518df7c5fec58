/// What becomes of an order once one of its steps gives up (retries exhausted, or an error
/// that is not retried): the one decision the compensation driver takes from a dead letter.
public enum FailureOutcome: Hashable, Sendable {
    /// Compensate: undo these steps' effects in this order (each keyed
    /// `<order_id>:<step>:undo`; undoing what never happened is a no-op), then publish
    /// `orders.compensated`.
    case compensate(undo: [SagaStep])
    /// Park in `orders.manual-review` with this reason: the effects stay until an operator acts.
    case park(reason: String)
}

extension SagaConfiguration {
    /// The effects undone, in order, when a failure at `step` is compensated: the step's
    /// `undo` list, or by default the step itself and every earlier step, newest first.
    public func undoOrder(forFailureAt step: SagaStep) -> [SagaStep] {
        self[step].undo ?? step.undoOrderOnFailure
    }

    /// The outcome of `step` giving up with `errorClass`: `on_exhausted: park` parks whatever
    /// the error; otherwise an error class `compensate_on` matches compensates with
    /// `undoOrder(forFailureAt:)`, and any other parks.
    public func outcome(ofFailureAt step: SagaStep, errorClass: String) -> FailureOutcome {
        let policy = self[step]
        if policy.onExhausted == .park {
            return .park(reason: "\(step.rawValue) gave up (\(errorClass)) and its policy parks orders (on_exhausted: park)")
        }
        guard policy.compensates(errorClass) else {
            return .park(reason: "\(step.rawValue) gave up with \(errorClass), which is not in its compensate_on [\(policy.compensateOn.joined(separator: ", "))]")
        }
        return .compensate(undo: undoOrder(forFailureAt: step))
    }
}
