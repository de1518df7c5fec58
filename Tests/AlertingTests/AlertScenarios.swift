import Alerting
import FulfillmentMetrics
import SagaDomain

/// Metric series over time (one value a minute) that make one alert rule fire at
/// `firesAt` and stay quiet at `quietAt`: fed to promtool (Prometheus' evaluator) and to the
/// in-process evaluator alike, so the two are shown to agree.
struct AlertScenario: Sendable, CustomStringConvertible {
    struct Series: Sendable {
        var name: String
        var labels: [String: String]
        var values: [Double]
    }

    var rule: String
    /// The alert's labels besides `alertname` and `severity`.
    var labels: [String: String] = [:]
    var series: [Series]
    var quietAt: Int
    var firesAt: Int

    var description: String { rule }

    static let minutes = 16

    /// 0 until `from`, then growing by `step` a minute (a counter).
    static func counter(_ name: String, _ labels: [String: String], from: Int = 0, step: Double, base: Double = 0) -> Series {
        Series(name: name, labels: labels, values: (0..<minutes).map { $0 < from ? base : base + Double($0 - from + 1) * step })
    }

    /// `before` until `from`, then `after` (a gauge).
    static func gauge(_ name: String, _ labels: [String: String], before: Double, after: Double, from: Int) -> Series {
        Series(name: name, labels: labels, values: (0..<minutes).map { $0 < from ? before : after })
    }

    /// A latency histogram whose observations (10 a minute) land at `fastBound` until `from`,
    /// then at `slowBound`.
    static func latency(tier: String, fastBound: Double, slowBound: Double, from: Int) -> [Series] {
        let name = MetricCatalogue.orderDuration.name + "_bucket"
        let bounds = MetricCatalogue.orderDurationBuckets.map { $0 } + [.infinity]
        return bounds.map { bound in
            let values = (0..<minutes).map { minute -> Double in
                let fast = Double(min(minute, from)) * 10
                let slow = Double(max(0, minute - from)) * 10
                return (bound >= fastBound ? fast : 0) + (bound >= slowBound ? slow : 0)
            }
            return Series(name: name, labels: ["tier": tier, "outcome": "completed", "le": bound.isInfinite ? "+Inf" : format(bound)], values: values)
        }
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(format: "%.1f", value) : "\(value)"
    }

    static func all(_ configuration: SagaConfiguration) -> [AlertScenario] {
        let orders = MetricCatalogue.ordersTotal.name
        let attempts = MetricCatalogue.stepAttempts.name
        let inventoryDLT = configuration.topics.deadLetter(.inventory)
        return [
            AlertScenario(rule: "SagaSuccessRateLow", series: [
                counter(orders, ["outcome": "completed", "tier": "standard"], step: 100),
                counter(orders, ["outcome": "compensated", "tier": "standard"], from: 6, step: 10),
            ], quietAt: 4, firesAt: 12),
            AlertScenario(rule: "InventoryReserveFailuresHigh", series: [
                counter(orders, ["outcome": "accepted", "tier": "standard"], step: 100),
                counter(MetricCatalogue.deadLetters.name, ["topic": inventoryDLT], from: 6, step: 20),
            ], quietAt: 4, firesAt: 12),
            AlertScenario(rule: "StepRetryRateHigh", labels: ["step": "payment"], series: [
                counter(attempts, ["step": "payment", "result": "ok"], step: 100),
                counter(attempts, ["step": "inventory", "result": "ok"], step: 100),
                counter(MetricCatalogue.retries.name, ["step": "payment", "tier": "standard"], from: 6, step: 20),
                counter(MetricCatalogue.retries.name, ["step": "inventory", "tier": "standard"], step: 0),
            ], quietAt: 4, firesAt: 12),
            AlertScenario(rule: "StepTimeouts", labels: ["step": "shipping"], series: [
                counter(attempts, ["step": "shipping", "result": "ok"], step: 100),
                gauge(attempts, ["step": "shipping", "result": "timeout"], before: 0, after: 1, from: 9),
            ], quietAt: 4, firesAt: 11),
            AlertScenario(rule: "DeadLettersGrowing", labels: ["topic": "payment.requested.dlt"], series: [
                gauge(MetricCatalogue.deadLettersPending.name, ["topic": "payment.requested.dlt"], before: 5, after: 8, from: 9),
            ], quietAt: 4, firesAt: 11),
            AlertScenario(rule: "OrdersInManualReview", series: [
                gauge(MetricCatalogue.ordersInFlight.name, ["state": "manual_review"], before: 0, after: 1, from: 9),
                gauge(MetricCatalogue.ordersInFlight.name, ["state": "payment"], before: 3, after: 3, from: 0),
            ], quietAt: 4, firesAt: 11),
            AlertScenario(rule: "VIPLatencyHigh", series: latency(tier: "vip", fastBound: 1, slowBound: 300, from: 6), quietAt: 4, firesAt: 12),
            AlertScenario(rule: "StandardLatencyHigh", series: latency(tier: "standard", fastBound: 60, slowBound: 600, from: 6), quietAt: 4, firesAt: 12),
            AlertScenario(rule: "StuckOrdersHigh", series: [
                counter(MetricCatalogue.stuckOrdersRecovered.name, [:], from: 6, step: 2),
            ], quietAt: 4, firesAt: 12),
            AlertScenario(rule: "ConsumerLagHigh", labels: ["group": "payment"], series: [
                gauge(MetricCatalogue.consumerLag.name, ["group": "payment", "topic": "payment.requested"], before: 10, after: 200_000, from: 6),
                gauge(MetricCatalogue.consumerLag.name, ["group": "tracker", "topic": "orders.completed"], before: 10, after: 10, from: 6),
            ], quietAt: 4, firesAt: 12),
        ]
    }

    /// The metrics at `minute`, as the process's exposition would hold them.
    func snapshot(at minute: Int) -> MetricsSnapshot {
        var values: [MetricsSnapshot.Series: Double] = [:]
        for series in series { values[.init(series.name, series.labels)] = series.values[minute] }
        return MetricsSnapshot(values: values, at: Double(minute * 60))
    }
}
