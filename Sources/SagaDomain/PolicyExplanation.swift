import Foundation

/// The retry, timeout and compensation logic of a configuration, in plain words.
public struct PolicyExplanation: Sendable {
    public let configuration: SagaConfiguration

    public init(configuration: SagaConfiguration) { self.configuration = configuration }

    static func seconds(_ s: Double) -> String { SagaGraph.seconds(s) }

    static func describe(_ policy: StepPolicy, what: String) -> [String] {
        var lines: [String] = []
        var timeout = policy.timeoutSeconds >= noTimeoutSeconds
            ? "Attempts have no timeout (\(seconds(policy.timeoutSeconds)), Step Functions' default): nothing cancels a hung attempt, and the watchdog's budget for this step never runs out."
            : "Each attempt may take \(seconds(policy.timeoutSeconds)); past that it is cancelled and counts as a `Timeout` failure."
        if let heartbeat = policy.heartbeatSeconds {
            timeout += " An attempt that reports no progress for \(seconds(heartbeat)) is cancelled sooner, as a `HeartbeatTimeout`."
        }
        lines.append(timeout)
        if policy.retry.isEmpty {
            lines.append("Failures are not retried.")
        }
        for rule in policy.retry {
            let delays = (1...max(1, rule.maxAttempts)).prefix(rule.maxAttempts).map { seconds(rule.delaySeconds(retry: $0)) }
            var sentence = "\(rule.errorEquals.joined(separator: ", ")): retried up to \(rule.maxAttempts) time\(rule.maxAttempts == 1 ? "" : "s")"
            if !delays.isEmpty { sentence += ", after \(delays.joined(separator: ", "))" }
            if rule.backoffRate != 1 { sentence += " (interval \(seconds(rule.intervalSeconds)) × \(rule.backoffRate) per retry" + (rule.maxDelaySeconds.map { ", capped at \(seconds($0))" } ?? "") + ")" }
            if rule.jitter == .full { sentence += ", each delay drawn uniformly between 0 and that value (full jitter)" }
            sentence += ". A waiting retry sits on its own delayed topic and holds up no other order."
            lines.append(sentence)
        }
        if !policy.nonRetryable.isEmpty {
            lines.append("\(policy.nonRetryable.joined(separator: ", ")) \(policy.nonRetryable.count == 1 ? "is" : "are") never retried.")
        }
        lines.append("Other errors are not retried. When \(what) gives up, the message goes to its dead-letter topic with the error's class, message, attempt and original position in headers.")
        return lines
    }

    /// Step Functions' `TimeoutSeconds` default (99999999 s, about three years): a timeout this
    /// long means none, and is how an imported task without `TimeoutSeconds` reads here.
    public static let noTimeoutSeconds: Double = 99_999_999

    /// What happens once `step` gives up: compensation (which errors, which undos in which
    /// order) or parking, in the seed's words.
    func compensationLines(_ step: SagaStep) -> [String] {
        let policy = configuration[step]
        let review = configuration.topics.manualReview
        let undo = configuration.undoOrder(forFailureAt: step)
        let kept = step.undoOrderOnFailure.reversed().compactMap(\.effectName)
        let keptText = kept.isEmpty ? "nothing is left to undo" : Self.list(kept) + (kept.count == 1 ? " stays" : " stay") + " until an operator acts"
        if policy.onExhausted == .park {
            return ["The order is then parked in \(review) for an operator instead of being compensated."]
        }
        let undoText = undo.isEmpty
            ? "nothing is undone (the order is marked compensated as it stands)"
            : undo.map { "\($0.undoName) (\($0.rawValue))" }.joined(separator: " → ")
        var compensated: String
        if policy.undo == nil {
            compensated = undo.isEmpty ? "nothing to undo." : undoText + ", newest effect first; undoing something that never happened is a no-op."
        } else {
            compensated = "\(undoText)."
            let done = step.undoOrderOnFailure.filter { $0 != step }
            let missing = done.filter { !undo.contains($0) }
            if !missing.isEmpty {
                compensated += " \(Self.capitalized(Self.list(missing.compactMap(\.effectName)))) \(missing.count == 1 ? "is" : "are") not undone."
            }
            let order = undo.filter { step.undoOrderOnFailure.contains($0) }
            if order != step.undoOrderOnFailure.filter({ order.contains($0) }) {
                compensated += " That is not newest effect first."
            }
        }
        if policy.compensateOn.contains("States.ALL") {
            return ["The order is then compensated: " + compensated]
        }
        if policy.compensateOn.isEmpty {
            return ["Whatever the error, the order is then parked in \(review); \(keptText)."]
        }
        return [
            "\(policy.compensateOn.joined(separator: ", ")): the order is compensated: \(compensated)",
            "Any other error parks the order in \(review); \(keptText).",
        ]
    }

    static func list(_ items: [String]) -> String {
        switch items.count {
        case 0: ""
        case 1: items[0]
        default: items.dropLast().joined(separator: ", ") + " and " + items.last!
        }
    }

    static func capitalized(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() }

    public func text() -> String {
        let t = configuration.topics
        var out: [String] = []
        out.append("An order passes four steps: \(SagaStep.allCases.map(\.actionName).joined(separator: " → ")). Each step is a worker that consumes its request topic, does its work idempotently (keyed by `<order_id>:<step>`, so redelivery, recovery and redrive never charge or reserve twice) and publishes the next request.")
        out.append("")
        out.append("VIP orders (tier `vip`, or an amount above \(Int(configuration.vipAmountThreshold))) travel on the `.priority` topics, which every worker polls in a lane of its own and handles ahead of standard work; while VIP orders flood in (the lane keeps finding full batches), at least one standard batch is taken in every \(configuration.starvationGuard) so standard orders keep moving.")
        for step in SagaStep.allCases {
            let policy = configuration[step]
            out.append("")
            out.append("\(step.rawValue) (\(step.actionName), topic \(t.requested(step))):")
            for line in Self.describe(policy, what: "the step") { out.append("  - " + line) }
            for line in compensationLines(step) { out.append("  - " + line) }
            out.append("  - Worst case in this step: \(String(format: "%.1f", policy.budgetSeconds)) s (every attempt to its timeout plus every retry delay). The watchdog treats an order still here after that, plus the time a crashed worker's partitions take to move to a live one (its consumer group's session timeout) and a grace of \(Self.seconds(configuration.watchdogGraceSeconds)), as stuck: it re-publishes the request with the same idempotency key, and compensates if that does not help.")
        }
        out.append("")
        let undos = SagaStep.allCases.allSatisfy { configuration[$0].undo == nil }
            ? "cancel shipment → release inventory → refund payment"
            : "the undos listed above for the step that failed, in that order"
        out.append("Compensation (topic \(t.compensation)): \(undos), then one failure notice to the customer; every undo is keyed `<order_id>:<step>:undo`.")
        for line in Self.describe(configuration.compensation, what: "compensation") { out.append("  - " + line) }
        out.append("  - A compensation that runs out of retries is parked in \(t.manualReview) with an alert and stays redrivable (`fulfillment dlq redrive`). Compensation never gives up silently.")
        return out.joined(separator: "\n")
    }

}
