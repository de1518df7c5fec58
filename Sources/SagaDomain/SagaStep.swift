/// The four steps of the saga, in order.
public enum SagaStep: String, Codable, CaseIterable, Hashable, Sendable, Comparable {
    case payment
    case inventory
    case shipping
    case notification

    /// The step's position in the saga (0-based).
    public var index: Int { Self.allCases.firstIndex(of: self)! }

    public static func < (lhs: SagaStep, rhs: SagaStep) -> Bool { lhs.index < rhs.index }

    public var next: SagaStep? {
        let i = index + 1
        return i < Self.allCases.count ? Self.allCases[i] : nil
    }

    /// Steps already done when this step's request is published.
    public var completedBefore: [SagaStep] { Array(Self.allCases.prefix(index)) }

    /// What to undo when this step fails for good: the step itself (it may have half-happened,
    /// e.g. a charge whose reply timed out; undoing what never happened is a no-op) and every
    /// step before it, newest first. A sent notification cannot be undone.
    public var undoOrderOnFailure: [SagaStep] {
        (completedBefore + [self]).reversed().filter { $0 != .notification }
    }

    /// The step's compensation, as users read it.
    public var undoName: String {
        switch self {
        case .payment: "refund"
        case .inventory: "release"
        case .shipping: "cancel shipment"
        case .notification: "none (a sent notification cannot be unsent)"
        }
    }

    /// What the step leaves behind until it is undone, as users read it (`nil`: nothing to undo).
    public var effectName: String? {
        switch self {
        case .payment: "the charge"
        case .inventory: "the reservation"
        case .shipping: "the shipment"
        case .notification: nil
        }
    }

    /// What the step does, as users read it.
    public var actionName: String {
        switch self {
        case .payment: "charge payment"
        case .inventory: "reserve inventory"
        case .shipping: "prepare shipment"
        case .notification: "notify customer"
        }
    }

    /// The request topic's stem (`payment.requested`, `shipment.requested`, ...).
    public var topicStem: String {
        switch self {
        case .payment: "payment"
        case .inventory: "inventory"
        case .shipping: "shipment"
        case .notification: "notification"
        }
    }
}

/// Whether a message travels in the VIP lane.
public enum Priority: String, Codable, Hashable, Sendable {
    case vip
    case standard
}
