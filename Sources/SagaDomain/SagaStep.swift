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

/// Topic names of DESIGN.md, with an optional prefix before each.
public struct SagaTopics: Hashable, Sendable {
    public var prefix: String

    public init(prefix: String = "") { self.prefix = prefix }

    public var orders: String { prefix + "orders" }
    public var rejected: String { prefix + "orders.rejected" }
    public var completed: String { prefix + "orders.completed" }
    public var compensated: String { prefix + "orders.compensated" }
    public var manualReview: String { prefix + "orders.manual-review" }
    public var compensation: String { prefix + "compensation.requested" }

    public func requested(_ step: SagaStep, priority: Priority = .standard) -> String {
        prefix + step.topicStem + ".requested" + (priority == .vip ? ".priority" : "")
    }

    /// Retry tier `n` (1-based) of a step (shared by both lanes) or of compensation.
    public func retry(_ step: SagaStep?, tier: Int) -> String {
        (step.map { requested($0) } ?? compensation) + ".retry.\(tier)"
    }

    public func deadLetter(_ step: SagaStep?) -> String {
        (step.map { requested($0) } ?? compensation) + ".dlt"
    }

    /// Every step dead-letter topic (what the compensation driver consumes).
    public var stepDeadLetters: [String] { SagaStep.allCases.map { deadLetter($0) } }

    /// Which step a request, retry or dead-letter topic belongs to (`nil` for compensation topics).
    public func step(ofTopic topic: String) -> SagaStep? {
        SagaStep.allCases.first { topic.hasPrefix(requested($0)) }
    }
}

/// Header names every saga message carries (DESIGN.md, "Topics").
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
    /// Steps to undo, comma-separated, newest first (compensation requests).
    /// Why the saga is being compensated (compensation requests).
    public static let reason = "reason"
    /// Set on a request re-emitted by the watchdog.
    public static let recoveredBy = "recovered-by"
    /// Set on a message put back by `dlq redrive`.
    public static let redriven = "redriven"
    /// On an order's first request: when it was submitted (ms), and where (`topic/partition/offset`).
    public static let createdAt = "created-at"
    public static let sourcePosition = "source-position"
}

/// Idempotency keys: `<order_id>:<step>`, compensations `<order_id>:<step>:undo`; never
/// attempt- or run-specific, so every redelivery maps to the same effect.
public enum IdempotencyKey {
    public static func step(_ orderID: String, _ step: SagaStep) -> String { "\(orderID):\(step.rawValue)" }
    public static func undo(_ orderID: String, _ step: SagaStep) -> String { "\(orderID):\(step.rawValue):undo" }
    public static func compensation(_ orderID: String) -> String { "\(orderID):compensation" }
    public static func failureNotice(_ orderID: String) -> String { "\(orderID):notification:failure" }
}
