import Alerting
import Dispatcher
import Foundation
import FulfillmentMetrics
import IOThreads
import Messaging
import SagaDomain

/// What the console's pages show live, one JSON frame a second over Server-Sent Events
/// (`GET /api/events?view=…`): figures read off the process's own metrics (rates from the
/// difference between two snapshots), the store's counts, and, for the views that show
/// them, the topics and the dead letters. One stream per page; the page draws its charts
/// from the frames it receives.
struct LiveFeed: Sendable {
    enum View: String, Sendable {
        case overview, graph, orders, dlq, topics
    }

    struct Frame: Encodable {
        struct Tier: Encodable {
            var p50: Double?
            var p99: Double?
        }

        struct Step: Encodable {
            var in_flight: Int
            var attempts_per_s: Double
            var failures_per_s: Double
            var retries: Double
            var dead_letters_pending: Double
            var timeouts: Double
        }

        struct Topic: Encodable {
            var name: String
            var partitions: Int
            var end_offset: Int64
            var records: Int64
            var lag: [String: Int64]
        }

        var at: Double
        var view: String
        var orders: [String: Double]
        var orders_per_s: Double
        var success_rate: Double?
        var in_flight: [String: Int]
        var stuck: Int?
        /// Seconds, over the last few seconds' completed orders; null when none completed.
        var latency: [String: Tier]
        var steps: [String: Step]
        var alerts: [ActiveAlert]
        var topics: [Topic]?
        var dead_letters: [DeadLetters.TopicSummary]?
    }

    let surface: OperatorSurface
    let view: View

    /// One frame from `now` and the snapshot of about a second before it.
    func frame(now: MetricsSnapshot, before: MetricsSnapshot, recent: MetricsSnapshot, stuck: Int?) async -> Frame {
        let seconds = max(0.001, now.at - before.at)
        let orders = MetricCatalogue.ordersTotal.name
        var totals: [String: Double] = [:]
        for outcome in ["accepted", "rejected", "completed", "compensated", "manual_review"] { totals[outcome] = now.sum(orders, ["outcome": outcome]) }
        let finished = ["completed", "compensated"].reduce(0.0) { $0 + now.increase(orders, since: before, ["outcome": $1]) }
        let completed = totals["completed"] ?? 0
        let compensated = totals["compensated"] ?? 0
        var inFlight: [String: Int] = [:]
        for (state, value) in now.sums(MetricCatalogue.ordersInFlight.name, by: "state") { inFlight[state] = Int(value) }
        var latency: [String: Frame.Tier] = [:]
        let duration = MetricCatalogue.orderDuration.name
        for tier in ["vip", "standard"] {
            let filter = ["tier": tier, "outcome": "completed"]
            let earlier = Dictionary(recent.buckets(duration, filter).map { ($0.upperBound, $0.count) }, uniquingKeysWith: max)
            let window = now.buckets(duration, filter).map { (upperBound: $0.upperBound, count: max(0, $0.count - (earlier[$0.upperBound] ?? 0))) }
            latency[tier] = Frame.Tier(p50: MetricsSnapshot.quantile(0.5, window), p99: MetricsSnapshot.quantile(0.99, window))
        }
        var steps: [String: Frame.Step] = [:]
        let topics = surface.configuration.topics
        let attempts = MetricCatalogue.stepAttempts.name
        for step in SagaStep.allCases.map(\.rawValue) + ["compensation"] {
            let state = step == "compensation" ? "compensating" : step
            let all = now.increase(attempts, since: before, ["step": step])
            let ok = now.increase(attempts, since: before, ["step": step, "result": "ok"])
            steps[step] = Frame.Step(
                in_flight: inFlight[state] ?? 0, attempts_per_s: all / seconds, failures_per_s: (all - ok) / seconds,
                retries: now.sum(MetricCatalogue.retries.name, ["step": step]),
                dead_letters_pending: now.sum(MetricCatalogue.deadLettersPending.name, ["topic": topics.deadLetter(SagaStep(rawValue: step))]),
                timeouts: now.sum(attempts, ["step": step, "result": "timeout"]) + now.sum(attempts, ["step": step, "result": "heartbeat_missed"]))
        }
        var frame = Frame(
            at: now.at, view: view.rawValue, orders: totals, orders_per_s: finished / seconds,
            success_rate: completed + compensated > 0 ? completed / (completed + compensated) : nil, in_flight: inFlight, stuck: stuck,
            latency: latency, steps: steps, alerts: surface.alerts?.alerts ?? [])
        if view == .topics { frame.topics = await topicFigures() }
        if view == .dlq, let store = surface.dispatcherStore {
            frame.dead_letters = try? await DeadLetters(broker: surface.broker, store: store, topics: topics).summaries()
        }
        return frame
    }

    func topicFigures() async -> [Frame.Topic] {
        guard let listed = try? await surface.broker.listTopics() else { return [] }
        var lag: [String: [String: Int64]] = [:]
        for (group, lags) in (try? await SagaGroups.lags(surface.broker, surface.configuration)) ?? [:] {
            for entry in lags { lag[entry.topic, default: [:]][group, default: 0] += entry.lag }
        }
        return listed.sorted { $0.name < $1.name }.map { topic in
            Frame.Topic(
                name: topic.name, partitions: topic.partitions.count, end_offset: topic.partitions.reduce(0) { $0 + $1.endOffset },
                records: topic.partitions.reduce(0) { $0 + $1.endOffset - $1.beginOffset }, lag: lag[topic.name] ?? [:])
        }
    }

    /// How many orders are stuck now (the watchdog's view), read through the open-order index.
    func stuckCount() async -> Int? {
        guard let store = surface.dispatcherStore else { return nil }
        let budgets = Dictionary(uniqueKeysWithValues: OrderState.allCases.filter { !$0.isTerminal }.map { ($0, Watchdog.budgetMilliseconds($0, surface.configuration)) })
        return try? await BlockingIO.run {
            try store.orders(.stuck(now: UnixClock.nowMillis(), budgets: budgets), after: nil, limit: OperatorLimits.pageLimit).orders.count
        }
    }
}
