import Foundation
import FulfillmentMetrics

/// One alert: what Prometheus evaluates (a PromQL expression, in the rule file) and what
/// `run` evaluates in process (the same condition over its own metrics), from one threshold.
public struct AlertRule: Sendable {
    public enum Severity: String, Sendable, Codable {
        /// Someone should act now (orders at risk).
        case page
        /// Look at it soon.
        case ticket
    }

    /// One instance of a firing condition: the rule's grouping labels and the value that crossed.
    public struct Finding: Sendable, Equatable {
        public var labels: [String: String]
        public var value: Double
    }

    public let name: String
    public let severity: Severity
    /// One line for people; `{{ $labels.x }}` and `{{ $value }}` as Prometheus writes them.
    public let summary: String
    public let description: String
    public let expression: String
    /// How long the condition must hold before the alert fires.
    public let forSeconds: Double
    /// How far back the in-process evaluation looks (the longest range in `expression`).
    public let lookbackSeconds: Double
    /// The in-process evaluation: snapshots of now and of `lookbackSeconds` ago (or the
    /// oldest there is), and the findings that cross the threshold.
    let evaluate: @Sendable (_ now: MetricsSnapshot, _ then: MetricsSnapshot) -> [Finding]

    public init(
        name: String, severity: Severity, summary: String, description: String, expression: String, forSeconds: Double, lookbackSeconds: Double,
        evaluate: @escaping @Sendable (_ now: MetricsSnapshot, _ then: MetricsSnapshot) -> [Finding]
    ) {
        self.name = name
        self.severity = severity
        self.summary = summary
        self.description = description
        self.expression = expression
        self.forSeconds = forSeconds
        self.lookbackSeconds = lookbackSeconds
        self.evaluate = evaluate
    }

    public func findings(now: MetricsSnapshot, then: MetricsSnapshot) -> [Finding] { evaluate(now, then) }

    /// The summary with `{{ $labels.x }}` and `{{ $value }}` filled in, as Alertmanager shows it.
    public func summary(for finding: Finding) -> String {
        var text = summary
        for (key, value) in finding.labels { text = text.replacingOccurrences(of: "{{ $labels.\(key) }}", with: value) }
        return text.replacingOccurrences(of: "{{ $value }}", with: Self.format(finding.value))
    }

    static func format(_ value: Double) -> String {
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.4g", value)
    }
}
