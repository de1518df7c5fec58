import FulfillmentMetrics
import SagaDomain

/// The saga's alerts, made from the configuration's thresholds (`alerts:`) and topic
/// names: the seed's list — success rate, reserve failures, retry rate, step timeouts,
/// growing dead letters, manual review, latency per tier, stuck orders, consumer lag.
public enum AlertRules {
    public static func make(_ configuration: SagaConfiguration) -> [AlertRule] {
        let policy = configuration.alerts
        let w = policy.windowSeconds
        let range = duration(w)
        var rules: [AlertRule] = []
        let orders = MetricCatalogue.ordersTotal.name
        let attempts = MetricCatalogue.stepAttempts.name

        if let threshold = policy.successRateBelow {
            rules.append(AlertRule(
                name: "SagaSuccessRateLow", severity: .page,
                summary: "Saga success rate {{ $value }} is below \(AlertRule.format(threshold)) over \(range)",
                description: "Completed ÷ (completed + compensated) orders over the last \(range). Compensations are failures the saga undid: look at `fulfillment stats` and the dead-letter topics.",
                expression: "sum(increase(\(orders){outcome=\"completed\"}[\(range)])) / sum(increase(\(orders){outcome=~\"completed|compensated\"}[\(range)])) < \(number(threshold))",
                forSeconds: policy.forSeconds, lookbackSeconds: w
            ) { now, then in
                let completed = now.increase(orders, since: then, ["outcome": "completed"])
                let compensated = now.increase(orders, since: then, ["outcome": "compensated"])
                let rate = ratio(completed, completed + compensated)
                return rate < threshold ? [.init(labels: [:], value: rate)] : []
            })
        }
        if let threshold = policy.reserveFailureRateAbove {
            let dlt = configuration.topics.deadLetter(.inventory)
            let deadLetters = MetricCatalogue.deadLetters.name
            rules.append(AlertRule(
                name: "InventoryReserveFailuresHigh", severity: .page,
                summary: "{{ $value }} of orders failed to reserve inventory over \(range) (threshold \(AlertRule.format(threshold)))",
                description: "Orders dead-lettered at the inventory step ÷ orders accepted: an inventory problem (stock, the warehouse system). See `fulfillment dlq show \(dlt)`.",
                expression: "sum(increase(\(deadLetters){topic=\"\(dlt)\"}[\(range)])) / sum(increase(\(orders){outcome=\"accepted\"}[\(range)])) > \(number(threshold))",
                forSeconds: policy.forSeconds, lookbackSeconds: w
            ) { now, then in
                let rate = ratio(now.increase(deadLetters, since: then, ["topic": dlt]), now.increase(orders, since: then, ["outcome": "accepted"]))
                return rate > threshold ? [.init(labels: [:], value: rate)] : []
            })
        }
        if let threshold = policy.retryRateAbove {
            let retries = MetricCatalogue.retries.name
            rules.append(AlertRule(
                name: "StepRetryRateHigh", severity: .ticket,
                summary: "{{ $labels.step }} retries {{ $value }} of its attempts over \(range) (threshold \(AlertRule.format(threshold)))",
                description: "Retries ÷ attempts of one step: the step or the service it calls is slow or throttling.",
                expression: "sum by (step) (increase(\(retries)[\(range)])) / sum by (step) (increase(\(attempts)[\(range)])) > \(number(threshold))",
                forSeconds: policy.forSeconds, lookbackSeconds: w
            ) { now, then in
                perLabel("step", now, then, retries, attempts).compactMap { step, pair in
                    let rate = ratio(pair.0, pair.1)
                    return rate > threshold ? .init(labels: ["step": step], value: rate) : nil
                }
            })
        }
        if let threshold = policy.stepTimeoutsAbove {
            rules.append(AlertRule(
                name: "StepTimeouts", severity: .ticket,
                summary: "{{ $labels.step }}: {{ $value }} attempts timed out or missed their heartbeat over \(range)",
                description: "Attempts cancelled at timeout_seconds or heartbeat_seconds: infrastructure trouble or a hung dependency.",
                expression: "sum by (step) (increase(\(attempts){result=~\"timeout|heartbeat_missed\"}[\(range)])) > \(number(threshold))",
                forSeconds: 0, lookbackSeconds: w
            ) { now, then in
                var byStep: [String: Double] = [:]
                for result in ["timeout", "heartbeat_missed"] {
                    for (step, _) in now.sums(attempts, by: "step", ["result": result]) {
                        byStep[step, default: 0] += now.increase(attempts, since: then, ["step": step, "result": result])
                    }
                }
                return byStep.filter { $0.value > threshold }.map { .init(labels: ["step": $0.key], value: $0.value) }
            })
        }
        if policy.deadLettersPendingGrowing {
            let pending = MetricCatalogue.deadLettersPending.name
            rules.append(AlertRule(
                name: "DeadLettersGrowing", severity: .ticket,
                summary: "{{ $labels.topic }}: {{ $value }} more dead letters pending than \(range) ago",
                description: "Dead letters not redriven are piling up on this topic. Inspect with `fulfillment dlq show`, redrive once the cause is fixed.",
                expression: "sum by (topic) (delta(\(pending)[\(range)])) > 0",
                forSeconds: 0, lookbackSeconds: w
            ) { now, then in
                now.sums(pending, by: "topic").compactMap { topic, value in
                    let growth = value - then.sum(pending, ["topic": topic])
                    return growth > 0 ? .init(labels: ["topic": topic], value: growth) : nil
                }
            })
        }
        if let threshold = policy.manualReviewAbove {
            let inFlight = MetricCatalogue.ordersInFlight.name
            rules.append(AlertRule(
                name: "OrdersInManualReview", severity: .page,
                summary: "{{ $value }} orders parked in orders.manual-review",
                description: "Compensation ran out of retries, or a policy parks orders: an operator must look (`fulfillment dlq show orders.manual-review`) and redrive.",
                expression: "sum(\(inFlight){state=\"manual_review\"}) > \(number(threshold))",
                forSeconds: 0, lookbackSeconds: 0
            ) { now, _ in
                let parked = now.sum(inFlight, ["state": "manual_review"])
                return parked > threshold ? [.init(labels: [:], value: parked)] : []
            })
        }
        for (tier, name, limit) in [("vip", "VIPLatencyHigh", policy.vipP99SecondsAbove), ("standard", "StandardLatencyHigh", policy.standardP99SecondsAbove)] {
            guard let threshold = limit else { continue }
            let duration = MetricCatalogue.orderDuration.name
            rules.append(AlertRule(
                name: name, severity: tier == "vip" ? .page : .ticket,
                summary: "p99 of \(tier) orders is {{ $value }} s over \(range) (goal \(AlertRule.format(threshold)) s)",
                description: "End-to-end latency (accepted to completed) of \(tier) orders, 99th percentile.",
                expression: "histogram_quantile(0.99, sum by (le) (rate(\(duration)_bucket{tier=\"\(tier)\",outcome=\"completed\"}[\(range)]))) > \(number(threshold))",
                forSeconds: policy.forSeconds, lookbackSeconds: w
            ) { now, then in
                let filter = ["tier": tier, "outcome": "completed"]
                let current = now.buckets(duration, filter)
                let earlier = Dictionary(then.buckets(duration, filter).map { ($0.upperBound, $0.count) }, uniquingKeysWith: max)
                let window = current.map { (upperBound: $0.upperBound, count: max(0, $0.count - (earlier[$0.upperBound] ?? 0))) }
                guard let p99 = MetricsSnapshot.quantile(0.99, window), p99 > threshold else { return [] }
                return [.init(labels: [:], value: p99)]
            })
        }
        if let threshold = policy.stuckOrdersPerHourAbove {
            let stuck = MetricCatalogue.stuckOrdersRecovered.name
            rules.append(AlertRule(
                name: "StuckOrdersHigh", severity: .page,
                summary: "The watchdog recovered {{ $value }} stuck orders in the last hour",
                description: "More than \(AlertRule.format(threshold)) orders an hour stuck past their step budget: a systemic problem, not a transient one.",
                expression: "sum(increase(\(stuck)[1h])) > \(number(threshold))",
                forSeconds: 0, lookbackSeconds: 3600
            ) { now, then in
                let recovered = now.increase(stuck, since: then)
                return recovered > threshold ? [.init(labels: [:], value: recovered)] : []
            })
        }
        if let threshold = policy.consumerLagAbove {
            let lag = MetricCatalogue.consumerLag.name
            rules.append(AlertRule(
                name: "ConsumerLagHigh", severity: .ticket,
                summary: "Consumer group {{ $labels.group }} is {{ $value }} records behind",
                description: "Records not yet consumed by the group, over its topics: the workers do not keep up.",
                expression: "sum by (group) (\(lag)) > \(number(threshold))",
                forSeconds: policy.forSeconds, lookbackSeconds: 0
            ) { now, _ in
                now.sums(lag, by: "group").filter { $0.value > threshold }.map { .init(labels: ["group": $0.key], value: $0.value) }
            })
        }
        return rules
    }

    /// PromQL's division: x ÷ 0 is +Inf (or NaN for 0 ÷ 0, which compares false).
    static func ratio(_ x: Double, _ y: Double) -> Double {
        y == 0 ? (x == 0 ? .nan : .infinity) : x / y
    }

    /// Increases of two counters over the window, per value of `label`.
    static func perLabel(_ label: String, _ now: MetricsSnapshot, _ then: MetricsSnapshot, _ numerator: String, _ denominator: String) -> [String: (Double, Double)] {
        var result: [String: (Double, Double)] = [:]
        for value in Set(now.sums(numerator, by: label).keys).union(now.sums(denominator, by: label).keys) {
            result[value] = (now.increase(numerator, since: then, [label: value]), now.increase(denominator, since: then, [label: value]))
        }
        return result
    }

    /// A PromQL range: whole seconds, or milliseconds for fractions (tests run fast windows).
    static func duration(_ seconds: Double) -> String {
        if seconds >= 1, seconds == seconds.rounded() {
            let s = Int(seconds)
            if s % 3600 == 0 { return "\(s / 3600)h" }
            if s % 60 == 0 { return "\(s / 60)m" }
            return "\(s)s"
        }
        return "\(max(1, Int((seconds * 1000).rounded())))ms"
    }

    static func number(_ value: Double) -> String { AlertRule.format(value) }
}
