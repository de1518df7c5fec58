import FulfillmentMetrics

/// One alert instance: a rule and its grouping labels (a step, a topic, a group).
public struct ActiveAlert: Sendable, Equatable, Codable {
    public var name: String
    public var severity: String
    public var labels: [String: String]
    public var summary: String
    public var description: String
    public var value: Double
    /// When the condition started to hold, and when the alert fired (Unix seconds).
    public var activeSince: Double
    public var firingSince: Double?

    public var isFiring: Bool { firingSince != nil }

    /// Identifies the instance across evaluations.
    public var key: String { name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}" }

    enum CodingKeys: String, CodingKey {
        case name, severity, labels, summary, description, value
        case activeSince = "active_since", firingSince = "firing_since"
    }

    /// Every key always present (`firing_since` is `null` while pending); a value that is not
    /// finite (a ratio over nothing) as `null` too, since JSON has no infinity.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(severity, forKey: .severity)
        try c.encode(labels, forKey: .labels)
        try c.encode(summary, forKey: .summary)
        try c.encode(description, forKey: .description)
        try c.encode(value.isFinite ? value : nil, forKey: .value)
        try c.encode(activeSince, forKey: .activeSince)
        try c.encode(firingSince, forKey: .firingSince)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        severity = try c.decode(String.self, forKey: .severity)
        labels = try c.decode([String: String].self, forKey: .labels)
        summary = try c.decode(String.self, forKey: .summary)
        description = try c.decode(String.self, forKey: .description)
        value = try c.decodeIfPresent(Double.self, forKey: .value) ?? .infinity
        activeSince = try c.decode(Double.self, forKey: .activeSince)
        firingSince = try c.decodeIfPresent(Double.self, forKey: .firingSince)
    }

    public init(name: String, severity: String, labels: [String: String], summary: String, description: String, value: Double, activeSince: Double, firingSince: Double?) {
        self.name = name
        self.severity = severity
        self.labels = labels
        self.summary = summary
        self.description = description
        self.value = value
        self.activeSince = activeSince
        self.firingSince = firingSince
    }
}

/// The in-process alert evaluator as a plain state machine: fed a snapshot of the metrics
/// at each evaluation (time inside the snapshot), it keeps the history its rules look back
/// over, holds conditions for their `for` duration as Prometheus does (pending, then
/// firing), and says what fired and what resolved.
public struct AlertEvaluator: Sendable {
    public enum Transition: Sendable, Equatable {
        case fired(ActiveAlert)
        case resolved(ActiveAlert, at: Double)
    }

    public let rules: [AlertRule]
    private var history: [MetricsSnapshot] = []
    private var active: [String: ActiveAlert] = [:]
    private let keep: Double

    public init(rules: [AlertRule]) {
        self.rules = rules
        keep = rules.map(\.lookbackSeconds).max() ?? 0
    }

    /// Alerts whose condition holds now, firing or still pending, by name and labels.
    public var alerts: [ActiveAlert] { active.values.sorted { ($0.name, $0.key) < ($1.name, $1.key) } }
    public var firing: [ActiveAlert] { alerts.filter(\.isFiring) }

    public mutating func evaluate(_ snapshot: MetricsSnapshot) -> [Transition] {
        history.append(snapshot)
        // Keep one snapshot at or before the longest lookback, so `then` is never too recent.
        while history.count > 2, history[1].at <= snapshot.at - keep { history.removeFirst() }
        var transitions: [Transition] = []
        var seen: Set<String> = []
        for rule in rules {
            let then = history.last { $0.at <= snapshot.at - rule.lookbackSeconds } ?? history[0]
            for finding in rule.findings(now: snapshot, then: then) {
                var alert = ActiveAlert(
                    name: rule.name, severity: rule.severity.rawValue, labels: finding.labels, summary: rule.summary(for: finding),
                    description: rule.description, value: finding.value, activeSince: snapshot.at, firingSince: nil)
                if let previous = active[alert.key] {
                    alert.activeSince = previous.activeSince
                    alert.firingSince = previous.firingSince
                }
                if alert.firingSince == nil, snapshot.at - alert.activeSince >= rule.forSeconds {
                    alert.firingSince = snapshot.at
                    transitions.append(.fired(alert))
                }
                active[alert.key] = alert
                seen.insert(alert.key)
            }
        }
        for (key, alert) in active where !seen.contains(key) {
            active[key] = nil
            if alert.isFiring { transitions.append(.resolved(alert, at: snapshot.at)) }
        }
        return transitions
    }
}
