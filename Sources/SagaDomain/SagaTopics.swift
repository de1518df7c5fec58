/// Topic names of ../shared/DESIGN.md, with an optional prefix before each.
public struct SagaTopics: Hashable, Sendable {
    public var prefix: String

    public init(prefix: String = "") { self.prefix = prefix }

    public var orders: String { prefix + "orders" }
    /// Orders producers know to be VIP: the intake drains it first.
    public var ordersPriority: String { prefix + "orders.priority" }

    /// Where a producer puts an order of this lane.
    public func orders(_ lane: Priority) -> String { lane == .vip ? ordersPriority : orders }
    public var rejected: String { prefix + "orders.rejected" }
    public var completed: String { prefix + "orders.completed" }
    public var compensated: String { prefix + "orders.compensated" }
    public var manualReview: String { prefix + "orders.manual-review" }
    public var compensation: String { prefix + "compensation.requested" }
    /// Every write of the admin API: who, what, when, with what result.
    public var audit: String { prefix + "admin.audit" }

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
