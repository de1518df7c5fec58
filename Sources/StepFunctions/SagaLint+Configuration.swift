import SagaDomain

extension SagaLint {
    /// Findings for a configuration: every step's failure outcome against what the saga has
    /// done by then, the compensation policy, retries, timeouts and the saga's worst case.
    public func findings(for configuration: SagaConfiguration) -> [LintFinding] {
        var findings: [LintFinding] = []
        let review = configuration.topics.manualReview
        for step in SagaStep.allCases {
            let policy = configuration[step]
            let subject = step.rawValue
            let before = step.completedBefore.filter { $0.effectName != nil }
            let kept = (before + [step]).compactMap(\.effectName)
            if policy.onExhausted == .park {
                if !kept.isEmpty {
                    findings.append(LintFinding(.warning, .parksEveryFailure, subject,
                        "on_exhausted: park: every failure parks the order in \(review); \(Self.list(kept)) stay\(kept.count == 1 ? "s" : "") until an operator acts"))
                }
            } else {
                if !policy.compensateOn.contains("States.ALL") {
                    let which = policy.compensateOn.isEmpty ? "any error" : "any error but \(policy.compensateOn.joined(separator: ", "))"
                    let example = policy.compensateOn.contains("Timeout") ? "" : " (a timeout keeps \(kept.first ?? "it"))"
                    if !before.isEmpty {
                        findings.append(LintFinding(.error, .compensationGap, subject,
                            "\(which) parks the order in \(review) uncompensated: \(Self.list(kept)) stay\(kept.count == 1 ? "s" : "") until an operator acts\(example); add the errors to compensate_on, or [States.ALL]"))
                    } else if step.effectName != nil {
                        findings.append(LintFinding(.warning, .compensationGap, subject,
                            "\(which) parks the order in \(review) uncompensated: \(kept[0]), if it half-happened, stays until an operator acts"))
                    }
                }
                if !policy.compensateOn.isEmpty {
                    let undo = configuration.undoOrder(forFailureAt: step)
                    let missing = before.filter { !undo.contains($0) }
                    if !missing.isEmpty {
                        findings.append(LintFinding(.error, .compensationGap, subject,
                            "a failure here is compensated without undoing \(Self.list(missing.compactMap(\.effectName))) (\(missing.map(\.rawValue).joined(separator: ", ")) is missing from undo)"))
                    }
                    if step.effectName != nil, !undo.contains(step) {
                        findings.append(LintFinding(.warning, .compensationGap, subject,
                            "undo leaves out \(step.rawValue) itself: \(step.effectName!) may have half-happened (a call whose reply timed out) and is not undone"))
                    }
                    let order = undo.filter { (before + [step]).contains($0) }
                    let expected = order.sorted(by: >)
                    if order != expected {
                        findings.append(LintFinding(.warning, .undoOrder, subject,
                            "undo runs \(order.map(\.undoName).joined(separator: " → ")); newest effect first is \(expected.map(\.undoName).joined(separator: " → "))"))
                    }
                }
                if let first = policy.compensateOn.firstIndex(of: "States.ALL"), policy.compensateOn.count > 1 {
                    findings.append(LintFinding(.warning, .catchAllFirst, subject,
                        "compensate_on holds States.ALL\(first == 0 ? " ahead of" : " beside") \(policy.compensateOn.filter { $0 != "States.ALL" }.joined(separator: ", ")), which adds nothing: States.ALL already compensates every error"))
                }
            }
            findings += Self.retryFindings(policy.retry, nonRetryable: policy.nonRetryable, subject: subject, path: nil, isCompensation: false)
            findings += Self.timeoutFindings(timeout: policy.timeoutSeconds, heartbeat: policy.heartbeatSeconds, isCallback: false, subject: subject, path: nil)
        }
        let compensation = configuration.compensation
        if compensation.retry.allSatisfy({ $0.maxAttempts == 0 }) {
            findings.append(LintFinding(.error, .compensationNoRetry, "compensation",
                "refund, release and cancel are not retried: one failure (a gateway timeout) parks the order in \(review) with its effects half undone"))
        }
        findings += Self.retryFindings(compensation.retry, nonRetryable: compensation.nonRetryable, subject: "compensation", path: nil, isCompensation: true)
        findings += Self.timeoutFindings(timeout: compensation.timeoutSeconds, heartbeat: compensation.heartbeatSeconds, isCallback: false, subject: "compensation", path: nil)
        let parts = SagaStep.allCases.map { step in (step.rawValue, Self.worstCase(timeout: configuration[step].timeoutSeconds, rules: configuration[step].retry)) }
        let total = parts.map(\.1.seconds).reduce(0, +)
        let arithmetic = parts.map { "\($0.0): \($0.1.arithmetic)" }.joined(separator: "; ")
        findings.append(LintFinding(.info, .sagaWorstCase, "saga", "worst case \(NumberText.of(total)) s, every attempt of every step to its timeout plus every retry delay: \(arithmetic)"))
        if let budget = sagaBudgetSeconds, total > budget {
            findings.append(LintFinding(.warning, .sagaOverBudget, "saga", "the worst case, \(NumberText.of(total)) s, is above the saga's budget of \(NumberText.of(budget)) s"))
        }
        return findings
    }

    static func list(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " and " + items.last!
    }
}
