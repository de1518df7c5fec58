import SagaDomain

/// What a Step Functions state stands for in our saga.
public enum StateRole: Hashable, Sendable, CustomStringConvertible {
    /// One of our four steps, on the forward path.
    case step(SagaStep)
    /// The compensation of a step (refund, release, cancel shipment).
    case undo(SagaStep)
    /// Parks the order for an operator (`orders.manual-review`).
    case manualReview
    /// Deliberately left out: bookkeeping, a notice, data shaping.
    case skip

    /// The `--map` spelling: `payment`, `undo:payment`, `manual-review`, `skip`.
    public var description: String {
        switch self {
        case .step(let step): step.rawValue
        case .undo(let step): "undo:\(step.rawValue)"
        case .manualReview: "manual-review"
        case .skip: "skip"
        }
    }

    public init?(_ text: String) {
        let text = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch text {
        case "manual-review", "manual_review", "park": self = .manualReview
        case "skip": self = .skip
        default:
            if text.hasPrefix("undo:"), let step = SagaStep(rawValue: String(text.dropFirst(5))), step != .notification {
                self = .undo(step)
            } else if let step = SagaStep(rawValue: text) {
                self = .step(step)
            } else {
                return nil
            }
        }
    }

    /// The words a state's name, function and topic are read for, lower-cased letters and digits.
    static func words(of state: ASLState) -> String {
        var texts = [state.name]
        if let parameters = state.parameters {
            for field in ["FunctionName", "TopicArn", "QueueUrl"] {
                if case .string(let value)? = parameters[field] { texts.append(String(value.split(separator: ":").last ?? "")) }
            }
        }
        if let resource = state.resource, (resource.hasPrefix("arn:aws:lambda:") && resource.contains(":function:")) || state.isActivity {
            texts.append(String(resource.split(separator: ":").last ?? ""))
        }
        return texts.joined(separator: " ").lowercased()
    }

    /// The forward step a state's words suggest: validate/charge/payment → payment,
    /// reserve/inventory/stock/pick → inventory, ship/deliver → shipping,
    /// notify/sms/email/sns → notification (the resource decides last: `sns:publish` notifies).
    static func guessForward(_ state: ASLState) -> SagaStep? {
        guessForward(words: words(of: state), resource: state.resource)
    }

    static func guessForward(words text: String, resource: String?) -> SagaStep? {
        if ["notify", "notification", "sms", "email", "mail"].contains(where: text.contains) { return .notification }
        if ["validatepayment", "validate", "charge", "payment", "pay", "debit"].contains(where: text.contains) { return .payment }
        if ["reserve", "inventory", "stock"].contains(where: text.contains) || (text.contains("pick") && !text.contains("pickup")) { return .inventory }
        if ["ship", "deliver"].contains(where: text.contains) { return .shipping }
        if let resource, resource.contains(":sns:") || resource.contains(":::events:putEvents") { return .notification }
        return nil
    }

    /// The compensation role a state's words suggest: refund/credit → undo payment,
    /// release/restock → undo inventory, cancel (or void, revert, rollback) of a forward step
    /// → its undo, "manual review" → park; `nil` for anything else (a failure notice is `nil`).
    static func guessUndo(_ state: ASLState) -> StateRole? {
        let text = words(of: state)
        if text.contains("manualreview") || text.contains("manual-review") || text.contains("manual review") { return .manualReview }
        if ["notify", "notification", "sms", "email"].contains(where: text.contains) { return nil }
        if ["refund", "credit"].contains(where: text.contains) { return .undo(.payment) }
        if ["release", "restock", "unreserve"].contains(where: text.contains) { return .undo(.inventory) }
        if ["cancel", "void", "revert", "rollback", "undo", "compensat"].contains(where: text.contains),
           let step = guessForward(words: text, resource: nil), step != .notification {
            return .undo(step)
        }
        return nil
    }
}
