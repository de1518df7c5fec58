import SagaDomain

/// Writes a configuration as a Step Functions definition a team can compare or move back
/// to: a Choice that marks VIP orders, a Task per step with its Retry, TimeoutSeconds,
/// HeartbeatSeconds and Catch, one chain of undo tasks (refund, release, cancel shipment)
/// with the compensation's Retry and a Catch to a manual-review task, Succeed and Fail.
///
/// Importing the result gives back the steps' policies, the compensation policy and the VIP
/// threshold (`import(export(c)) == c` on those). Two spellings read back as their
/// equivalents: `compensate_on: []` (no Catch, every error parks) is exported as no Catch,
/// which reads back the same; a retry rule with `max_attempts: 0` becomes `non_retryable`.
/// Topics, partitions, workers, the watchdog, the warehouse and fault profiles have no
/// place in ASL and are not carried.
public struct ASLExport: Sendable {
    public var configuration: SagaConfiguration

    public init(configuration: SagaConfiguration) { self.configuration = configuration }

    /// The definition, and notes on anything ASL could not hold exactly.
    public struct Output: Sendable {
        public var definition: JSONValue
        public var notes: [String]
        /// The definition as indented JSON text.
        public var text: String { PrettyJSON.text(definition) }
    }

    static let stepStateNames: [SagaStep: String] = [
        .payment: "ChargePayment", .inventory: "ReserveInventory", .shipping: "PrepareShipment", .notification: "NotifyCustomer",
    ]
    static let undoStateNames: [SagaStep: String] = [.payment: "RefundPayment", .inventory: "ReleaseInventory", .shipping: "CancelShipment"]
    static let undoFunctionNames: [SagaStep: String] = [.payment: "fulfillment-refund", .inventory: "fulfillment-release", .shipping: "fulfillment-cancel-shipment"]
    static let manualReview = "ManualReview"
    static let parked = "OrderParked"
    static let compensated = "OrderCompensated"
    static let completed = "OrderCompleted"

    public func run() -> Output {
        var notes: [String] = []
        var states: [(key: String, value: JSONValue)] = []
        let first = Self.stepStateNames[.payment]!
        states.append(("RouteByPriority", .object([
            ("Type", .string("Choice")),
            ("Comment", .string("VIP orders: tier vip, or an amount above vip.amount_threshold. Here they ride the .priority topics; the steps are the same.")),
            ("Choices", .array([.object([
                ("Or", .array([
                    .object([("Variable", .string("$.customer_tier")), ("StringEquals", .string("vip"))]),
                    .object([("And", .array([
                        .object([("Variable", .string("$.amount")), ("IsPresent", .bool(true))]),
                        .object([("Variable", .string("$.amount")), ("NumericGreaterThan", .number(configuration.vipAmountThreshold))]),
                    ]))]),
                ])),
                ("Next", .string("PriorityLane")),
            ])])),
            ("Default", .string("StandardLane")),
        ])))
        for (lane, value) in [("PriorityLane", "vip"), ("StandardLane", "standard")] {
            states.append((lane, .object([
                ("Type", .string("Pass")), ("Result", .string(value)), ("ResultPath", .string("$.priority")), ("Next", .string(first)),
            ])))
        }

        // One node per distinct rest-of-list, so steps whose undo lists end alike share states.
        var undoNodes: [(name: String, steps: [SagaStep])] = []
        func undoEntry(_ steps: [SagaStep]) -> String {
            guard let head = steps.first else { return Self.compensated }
            if let existing = undoNodes.first(where: { $0.steps == steps }) { return existing.name }
            _ = undoEntry(Array(steps.dropFirst()))
            let base = Self.undoStateNames[head]!
            var name = base
            var n = 2
            while undoNodes.contains(where: { $0.name == name }) { name = "\(base) (\(n))"; n += 1 }
            undoNodes.append((name, steps))
            return name
        }
        var needsManualReview = false
        var needsCompensated = false
        for step in SagaStep.allCases {
            let policy = configuration[step]
            var fields: [(key: String, value: JSONValue)] = [("Type", .string("Task"))]
            var comment = "fulfillment step \(step.rawValue): \(step.actionName)"
            if let exact = ExactDurations.comment([("TimeoutSeconds", policy.timeoutSeconds), ("HeartbeatSeconds", policy.heartbeatSeconds)]) { comment += ". " + exact }
            fields.append(("Comment", .string(comment)))
            fields += Self.resource(for: step, heartbeats: policy.heartbeatSeconds != nil)
            fields.append(("ResultPath", .string("$.results.\(step.rawValue)")))
            fields += retryAndTimeout(policy, what: step.rawValue, notes: &notes)
            if policy.onExhausted == .park {
                needsManualReview = true
                fields.append(("Catch", .array([Self.catcher(["States.ALL"], next: Self.manualReview)])))
            } else if !policy.compensateOn.isEmpty {
                let undo = configuration.undoOrder(forFailureAt: step)
                let entry = undoEntry(undo)
                if undo.isEmpty { needsCompensated = true }
                let errors = policy.compensateOn.contains("States.ALL") ? ["States.ALL"] : ASLErrorName.asl(policy.compensateOn)
                fields.append(("Catch", .array([Self.catcher(errors, next: entry)])))
            }
            fields.append(("Next", .string(step.next.map { Self.stepStateNames[$0]! } ?? Self.completed)))
            states.append((Self.stepStateNames[step]!, .object(fields)))
        }
        states.append((Self.completed, .object([("Type", .string("Succeed"))])))
        for node in undoNodes {
            let step = node.steps[0]
            let policy = configuration.compensation
            var comment = "undo of \(step.rawValue): \(step.undoName)"
            if let exact = ExactDurations.comment([("TimeoutSeconds", policy.timeoutSeconds), ("HeartbeatSeconds", policy.heartbeatSeconds)]) { comment += ". " + exact }
            var fields: [(key: String, value: JSONValue)] = [("Type", .string("Task")), ("Comment", .string(comment))]
            fields.append(("Resource", .string("arn:aws:states:::lambda:invoke")))
            fields.append(("Parameters", .object([
                ("FunctionName", .string(Self.undoFunctionNames[step]!)),
                ("Payload", .object([
                    ("order.$", .string("$")),
                    ("idempotency_key.$", .string("States.Format('{}:\(step.rawValue):undo', $.order_id)")),
                ])),
            ])))
            fields.append(("ResultPath", .string("$.undone.\(step.rawValue)")))
            fields += retryAndTimeout(policy, what: "compensation", notes: &notes)
            fields.append(("Catch", .array([Self.catcher(["States.ALL"], next: Self.manualReview)])))
            needsManualReview = true
            let rest = Array(node.steps.dropFirst())
            if rest.isEmpty { needsCompensated = true }
            fields.append(("Next", .string(rest.isEmpty ? Self.compensated : undoNodes.first { $0.steps == rest }!.name)))
            states.append((node.name, .object(fields)))
        }
        if needsManualReview {
            states.append((Self.manualReview, .object([
                ("Type", .string("Task")),
                ("Comment", .string("Parks the order for an operator (orders.manual-review): the effects stay until someone acts.")),
                ("Resource", .string("arn:aws:states:::sqs:sendMessage")),
                ("Parameters", .object([
                    ("QueueUrl", .string("https://sqs.us-east-1.amazonaws.com/123456789012/orders-manual-review.fifo")),
                    ("MessageBody.$", .string("$")),
                    ("MessageGroupId.$", .string("$.order_id")),
                    ("MessageDeduplicationId.$", .string("States.Format('{}:manual-review', $.order_id)")),
                ])),
                ("Retry", .array([.object([("ErrorEquals", .array([.string("States.ALL")])), ("IntervalSeconds", .number(1)), ("MaxAttempts", .number(5)), ("BackoffRate", .number(2))])])),
                ("TimeoutSeconds", .number(60)),
                ("Next", .string(Self.parked)),
            ])))
            states.append((Self.parked, .object([
                ("Type", .string("Fail")), ("Error", .string("ManualReview")), ("Cause", .string("The order is parked in orders.manual-review for an operator.")),
            ])))
        }
        if needsCompensated {
            states.append((Self.compensated, .object([
                ("Type", .string("Fail")), ("Error", .string("OrderCompensated")), ("Cause", .string("A step gave up; its effects were undone.")),
            ])))
        }
        let definition = JSONValue.object([
            ("Comment", .string("Order fulfillment saga exported by `fulfillment asl export`: payment → inventory → shipping → notification, each failure compensated or parked as configured.")),
            ("StartAt", .string("RouteByPriority")),
            ("States", .object(states)),
        ])
        return Output(definition: definition, notes: notes)
    }

    /// A Lambda call (SNS for the notification); an activity for a step that reports
    /// heartbeats, since in Step Functions only activities and callbacks send them, and an
    /// activity's worker polling for tasks is what our worker consuming its topic is.
    static func resource(for step: SagaStep, heartbeats: Bool) -> [(key: String, value: JSONValue)] {
        let key = JSONValue.string("States.Format('{}:\(step.rawValue)', $.order_id)")
        if heartbeats {
            return [
                ("Resource", .string("arn:aws:states:us-east-1:123456789012:activity:fulfillment-\(step.rawValue)")),
                ("Parameters", .object([("order.$", .string("$")), ("idempotency_key.$", key)])),
            ]
        }
        if step == .notification {
            return [
                ("Resource", .string("arn:aws:states:::sns:publish")),
                ("Parameters", .object([
                    ("TopicArn", .string("arn:aws:sns:us-east-1:123456789012:fulfillment-notifications.fifo")),
                    ("Message.$", .string("States.JsonToString($)")),
                    ("MessageGroupId.$", .string("$.order_id")),
                    ("MessageDeduplicationId.$", key),
                ])),
            ]
        }
        return [
            ("Resource", .string("arn:aws:states:::lambda:invoke")),
            ("Parameters", .object([
                ("FunctionName", .string("fulfillment-\(step.rawValue)")),
                ("Payload", .object([("order.$", .string("$")), ("idempotency_key.$", key)])),
            ])),
        ]
    }

    static func catcher(_ errors: [String], next: String) -> JSONValue {
        .object([("ErrorEquals", .array(errors.map(JSONValue.string))), ("ResultPath", .string("$.error")), ("Next", .string(next))])
    }

    /// Retry (non-retryable errors first, as retriers with MaxAttempts 0), TimeoutSeconds and
    /// HeartbeatSeconds, in whole seconds with exact fractions in comments.
    func retryAndTimeout(_ policy: StepPolicy, what: String, notes: inout [String]) -> [(key: String, value: JSONValue)] {
        var retriers: [JSONValue] = []
        let nonRetryable = policy.nonRetryable.filter { $0 != "States.ALL" }
        if !nonRetryable.isEmpty {
            retriers.append(.object([
                ("ErrorEquals", .array(ASLErrorName.asl(nonRetryable).map(JSONValue.string))),
                ("MaxAttempts", .number(0)),
                ("Comment", .string("non_retryable")),
            ]))
        }
        for (i, rule) in policy.retry.enumerated() {
            let catchAll = rule.errorEquals.contains("States.ALL")
            var fields: [(key: String, value: JSONValue)] = [
                ("ErrorEquals", .array((catchAll ? ["States.ALL"] : ASLErrorName.asl(rule.errorEquals)).map(JSONValue.string))),
                ("IntervalSeconds", .number(ExactDurations.whole(rule.intervalSeconds))),
                ("MaxAttempts", .number(Double(rule.maxAttempts))),
                ("BackoffRate", .number(rule.backoffRate)),
            ]
            if let cap = rule.maxDelaySeconds { fields.append(("MaxDelaySeconds", .number(ExactDurations.whole(cap)))) }
            if rule.jitter == .full { fields.append(("JitterStrategy", .string("FULL"))) }
            if let exact = ExactDurations.comment([("IntervalSeconds", rule.intervalSeconds), ("MaxDelaySeconds", rule.maxDelaySeconds)]) {
                fields.append(("Comment", .string(exact)))
            }
            retriers.append(.object(fields))
            if catchAll, i < policy.retry.count - 1 {
                notes.append("\(what): the retry rules after the one on States.ALL can never match (the first matching rule wins) and are left out; ASL requires States.ALL last.")
                break
            }
        }
        var fields: [(key: String, value: JSONValue)] = []
        if !retriers.isEmpty { fields.append(("Retry", .array(retriers))) }
        fields.append(("TimeoutSeconds", .number(ExactDurations.whole(policy.timeoutSeconds))))
        if let heartbeat = policy.heartbeatSeconds {
            fields.append(("HeartbeatSeconds", .number(ExactDurations.whole(heartbeat))))
            if ExactDurations.whole(heartbeat) >= ExactDurations.whole(policy.timeoutSeconds) {
                notes.append("\(what): HeartbeatSeconds rounds up to TimeoutSeconds in whole seconds (ASL has no fractions); the exact values are in the state's Comment.")
            }
        }
        return fields
    }
}
