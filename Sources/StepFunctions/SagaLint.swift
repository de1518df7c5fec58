import Foundation
import SagaDomain

/// Finds where a saga leaks money, stock or shipments, and the retry and timeout settings
/// that cannot work, in a configuration or in a Step Functions definition. It returns
/// findings; the CLI prints them and exits 1 when one is an error.
public struct SagaLint: Sendable {
    /// The whole saga's own time budget, for `saga-over-budget`. A definition's top-level
    /// `TimeoutSeconds` is its budget whatever this says.
    public var sagaBudgetSeconds: Double?

    public init(sagaBudgetSeconds: Double? = nil) { self.sagaBudgetSeconds = sagaBudgetSeconds }

    public static func hasErrors(_ findings: [LintFinding]) -> Bool { findings.contains { $0.severity == .error } }

    /// Errors our workers raise that a retry will not fix, and the shapes of such names
    /// (`…Declined`, `OutOf…`, `Invalid…`). Retrying them a little is a choice (the seed
    /// waits twice for a restock), retrying them many times is a finding.
    static let businessErrors: Set<String> = ["CardDeclined", "OutOfStock", "UnsupportedDestination", "MailboxUnavailable", "PermanentError"]
    static let businessMarkers = ["Declined", "OutOf", "Invalid", "NotFound", "Insufficient", "Unsupported", "Denied", "Forbidden", "Unauthorized", "Validation", "Rejected"]

    static func isBusinessError(_ name: String) -> Bool {
        businessErrors.contains(name) || businessMarkers.contains { name.contains($0) } || (name.hasPrefix("Err") && !name.hasPrefix("Error"))
    }

    // MARK: rules both kinds of saga share

    /// `catch-all-first` and `retry-non-transient` for one retrying step.
    static func retryFindings(_ rules: [RetryRule], nonRetryable: [String], subject: String, path: ASLPath?, isCompensation: Bool) -> [LintFinding] {
        var findings: [LintFinding] = []
        if let first = rules.firstIndex(where: { $0.errorEquals.contains("States.ALL") }), first < rules.count - 1 {
            findings.append(LintFinding(.warning, .catchAllFirst, subject, path: path.map { ($0 / "Retry").index(first) },
                "the retry rule on States.ALL comes before \(rules.count - first - 1) other rule\(rules.count - first - 1 == 1 ? "" : "s") (\(rules[(first + 1)...].flatMap(\.errorEquals).joined(separator: ", "))), which can never match: the first matching rule wins"))
        }
        guard !isCompensation else { return findings }
        for (i, rule) in rules.enumerated() where rule.maxAttempts > 0 {
            let business = rule.errorEquals.filter(isBusinessError)
            let rulePath = path.map { ($0 / "Retry").index(i) }
            if !business.isEmpty {
                let many = rule.maxAttempts > 2
                findings.append(LintFinding(many ? .warning : .info, .retryNonTransient, subject, path: rulePath,
                    "retries \(business.joined(separator: ", ")) \(rule.maxAttempts) time\(rule.maxAttempts == 1 ? "" : "s"): a retry rarely fixes a business error\(many ? "; this delays compensation by \(NumberText.of(rule.totalDelaySeconds)) s" : " (a short wait for a restock or a fix can help)")"))
            } else if rule.errorEquals.contains("States.ALL"), nonRetryable.isEmpty {
                findings.append(LintFinding(.warning, .retryNonTransient, subject, path: rulePath,
                    "retries States.ALL \(rule.maxAttempts) time\(rule.maxAttempts == 1 ? "" : "s"), business errors (a declined card, no stock) included, and lists none as non-retryable"))
            }
        }
        return findings
    }

    /// `no-timeout` and `heartbeat-not-below-timeout`.
    static func timeoutFindings(timeout: Double?, heartbeat: Double?, isCallback: Bool, subject: String, path: ASLPath?) -> [LintFinding] {
        var findings: [LintFinding] = []
        let none = timeout.map { $0 >= PolicyExplanation.noTimeoutSeconds } ?? true
        if none {
            let bounded = heartbeat != nil
            findings.append(LintFinding(isCallback && !bounded ? .error : .warning, .noTimeout, subject, path: path,
                isCallback
                    ? "a callback with no TimeoutSeconds\(bounded ? " (only the heartbeat bounds it)" : " or HeartbeatSeconds") waits up to a year for its token, holding every effect before it"
                    : "no timeout (Step Functions' default is 99999999 s, effectively none): a hung call holds the order and everything it has done"))
        }
        if let heartbeat, let timeout, !none, heartbeat >= timeout {
            findings.append(LintFinding(.error, .heartbeatNotBelowTimeout, subject, path: path.map { $0 / "HeartbeatSeconds" },
                "heartbeat \(NumberText.of(heartbeat)) s is not shorter than the timeout \(NumberText.of(timeout)) s, so it can never fire first"))
        }
        return findings
    }

    /// The longest an order can spend in a step: every attempt to its timeout plus every
    /// delay of the retry rule with the most attempts, and the sum written out
    /// (`60 + 2 + 60 + 4 + 60 = 186 s`). Infinite when there is no timeout.
    static func worstCase(timeout: Double?, rules: [RetryRule]) -> (seconds: Double, arithmetic: String) {
        let rule = rules.max { $0.maxAttempts < $1.maxAttempts }
        let retries = rule?.maxAttempts ?? 0
        let perAttempt = timeout.flatMap { $0 >= PolicyExplanation.noTimeoutSeconds ? nil : $0 } ?? .infinity
        let delays = rule?.totalDelaySeconds ?? 0
        let total = Double(retries + 1) * perAttempt + delays
        let attempt = perAttempt.isInfinite ? "∞ (no timeout)" : NumberText.of(perAttempt)
        if retries <= 5, let rule {
            var terms = [attempt]
            for n in stride(from: 1, through: retries, by: 1) { terms += [NumberText.of(rule.delaySeconds(retry: n)), attempt] }
            return (total, terms.joined(separator: " + ") + " = " + NumberText.of(total) + " s")
        }
        if retries == 0 { return (total, "\(attempt) = \(NumberText.of(total)) s") }
        return (total, "\(retries + 1) × \(attempt) + \(NumberText.of(delays)) of retry delays = \(NumberText.of(total)) s")
    }
}

extension RetryRule {
    /// Every delay of this rule's retries added up, without stepping through them one by one
    /// (a definition may say MaxAttempts 99999999).
    var totalDelaySeconds: Double {
        guard maxAttempts > 0 else { return 0 }
        let n = Double(maxAttempts)
        let cap = maxDelaySeconds ?? .infinity
        if backoffRate <= 1 { return n * min(intervalSeconds, cap) }
        if intervalSeconds <= 0 { return 0 }
        // Retries before the cap is reached grow geometrically; the rest wait `cap` each.
        let uncapped = cap.isInfinite ? n : min(n, max(0, (log(cap / intervalSeconds) / log(backoffRate)).rounded(.down) + 1))
        let geometric = intervalSeconds * (pow(backoffRate, uncapped) - 1) / (backoffRate - 1)
        return geometric + (n - uncapped) * (cap.isInfinite ? 0 : cap)
    }
}
