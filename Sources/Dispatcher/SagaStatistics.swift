import Alerting
import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// What `stats` reports, computed from the tracker's store and the broker.
public struct SagaStatistics: Codable, Sendable {
    public struct Latency: Codable, Sendable {
        public var count: Int
        public var p50: Double
        public var p99: Double
    }

    public struct StepFigures: Codable, Sendable {
        public var retries: Int
        public var deadLetters: Int
        public var timeouts: Int

        enum CodingKeys: String, CodingKey {
            case retries, deadLetters = "dead_letters", timeouts
        }
    }

    /// docs/json.md: bumped when a key changes meaning or goes away.
    public var schemaVersion = 1
    public var orders: Int
    /// Accepted orders not yet completed, compensated or parked for manual review.
    public var inFlight: Int
    public var states: [String: Int]
    public var rejected: Int
    public var rejectionReasons: [String: Int]
    public var completedPerSecond: Double
    public var successRate: Double
    public var steps: [String: StepFigures]
    public var compensations: Int
    public var manualReviewAlerts: Int
    public var deadLetterDepth: [String: Int]
    public var lag: [String: Int64]
    public var latencyMilliseconds: [String: Latency]
    /// Alerts firing at the last in-process evaluation (`run`, `dispatcher`), and when that was
    /// (Unix seconds; null when none ran against these stores).
    public var alerts: [ActiveAlert]
    public var alertsEvaluatedAt: Double?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", orders, inFlight = "in_flight", states, rejected, rejectionReasons = "rejection_reasons", completedPerSecond = "completed_per_s"
        case successRate = "success_rate", steps, compensations, manualReviewAlerts = "manual_review_alerts"
        case deadLetterDepth = "dlt_depth", lag = "lag_records", latencyMilliseconds = "latency_ms"
        case alerts, alertsEvaluatedAt = "alerts_evaluated_at"
    }

    /// Every key always present (`alerts_evaluated_at` null when no evaluation ran).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(orders, forKey: .orders)
        try c.encode(inFlight, forKey: .inFlight)
        try c.encode(states, forKey: .states)
        try c.encode(rejected, forKey: .rejected)
        try c.encode(rejectionReasons, forKey: .rejectionReasons)
        try c.encode(completedPerSecond, forKey: .completedPerSecond)
        try c.encode(successRate, forKey: .successRate)
        try c.encode(steps, forKey: .steps)
        try c.encode(compensations, forKey: .compensations)
        try c.encode(manualReviewAlerts, forKey: .manualReviewAlerts)
        try c.encode(deadLetterDepth, forKey: .deadLetterDepth)
        try c.encode(lag, forKey: .lag)
        try c.encode(latencyMilliseconds, forKey: .latencyMilliseconds)
        try c.encode(alerts, forKey: .alerts)
        try c.encode(alertsEvaluatedAt, forKey: .alertsEvaluatedAt)
    }

    /// End-to-end latency of completed orders per lane, optionally of some orders only
    /// (`filter` is a condition on `orders` with its values).
    public static func latency(_ store: DispatcherStore, filter: (sql: String, values: [SQLValue]) = ("1 = 1", [])) throws -> [String: Latency] {
        var result: [String: Latency] = [:]
        for tier in [Priority.standard, Priority.vip] {
            let values = try store.stateReader.query(
                "SELECT finished_at - created_at FROM orders WHERE \(filter.sql) AND state = 'completed' AND priority = ? ORDER BY 1",
                filter.values + [.text(tier.rawValue)]
            ) { Double($0.int(0)) }
            result[tier.rawValue] = Latency(count: values.count, p50: percentile(values, 0.5), p99: percentile(values, 0.99))
        }
        return result
    }

    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        // Nearest rank: the smallest value with at least q of the values at or below it.
        let rank = Int((Double(sorted.count) * q).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    public static func collect(store: DispatcherStore, broker: any MessageBroker, configuration: SagaConfiguration) async throws -> SagaStatistics {
        let states = try store.stateCounts()
        let orders = states.values.reduce(0, +)
        let reasons = Dictionary(uniqueKeysWithValues: try store.intake.query("SELECT reason, COUNT(*) FROM rejections GROUP BY reason") { ($0.text(0), Int($0.int(1))) })
        var steps: [String: StepFigures] = [:]
        for step in SagaStep.allCases { steps[step.rawValue] = StepFigures(retries: 0, deadLetters: 0, timeouts: 0) }
        steps["compensation"] = StepFigures(retries: 0, deadLetters: 0, timeouts: 0)
        for (event, step, errorClass, count) in try store.connection.query(
            "SELECT event, COALESCE(step, 'compensation'), COALESCE(error_class, ''), COUNT(*) FROM \(store.everyHistoryTable) WHERE event IN ('retry_scheduled','dead_lettered','compensation_retry_scheduled','compensation_dead_lettered') GROUP BY 1, 2, 3"
        , [], { ($0.text(0), $0.text(1), $0.text(2), Int($0.int(3))) }) {
            var figures = steps[step] ?? StepFigures(retries: 0, deadLetters: 0, timeouts: 0)
            if event.hasSuffix("retry_scheduled") { figures.retries += count } else { figures.deadLetters += count }
            if errorClass == "Timeout" || errorClass == "HeartbeatTimeout" { figures.timeouts += count }
            steps[step] = figures
        }
        let firing = try store.firingAlerts()
        let compensations = Int(try store.connection.scalar("SELECT COUNT(DISTINCT order_id) FROM \(store.everyHistoryTable) WHERE event = 'compensation_requested'") ?? 0)
        let alerts = Int(try store.connection.scalar("SELECT COUNT(*) FROM alerts") ?? 0)
        // Throughput: completed orders between the first acceptance and the last completion
        // (what /metrics' two timestamp gauges give).
        let window = try store.connection.query(
            "SELECT (SELECT MIN(created_at) FROM orders), MAX(finished_at), COUNT(*) FROM orders WHERE state = 'completed'") { ($0.int(0), $0.int(1), $0.int(2)) }.first ?? (0, 0, 0)
        let completed = states[OrderState.completed.rawValue] ?? 0
        let compensated = states[OrderState.compensated.rawValue] ?? 0
        var depth: [String: Int] = [:]
        let t = configuration.topics
        let poison = ((try? await broker.listTopics()) ?? []).map(\.name).filter { $0.hasSuffix(PoisonRecord.suffix) }
        for topic in t.stepDeadLetters + [t.deadLetter(nil), t.manualReview] + poison {
            if let description = try? await broker.describeTopic(topic) {
                depth[topic] = Int(description.partitions.reduce(Int64(0)) { $0 + $1.endOffset - $1.beginOffset })
            }
        }
        let lag = try await SagaGroups.lags(broker, configuration).mapValues { $0.reduce(Int64(0)) { $0 + $1.lag } }
        return SagaStatistics(
            orders: orders, inFlight: orders - completed - compensated - (states[OrderState.manualReview.rawValue] ?? 0), states: states, rejected: reasons.values.reduce(0, +), rejectionReasons: reasons,
            completedPerSecond: window.1 > window.0 ? Double(window.2) / (Double(window.1 - window.0) / 1000) : 0,
            successRate: completed + compensated > 0 ? Double(completed) / Double(completed + compensated) : 0,
            steps: steps, compensations: compensations, manualReviewAlerts: alerts, deadLetterDepth: depth, lag: lag,
            latencyMilliseconds: try latency(store), alerts: firing.alerts, alertsEvaluatedAt: firing.evaluatedAt)
    }
}
