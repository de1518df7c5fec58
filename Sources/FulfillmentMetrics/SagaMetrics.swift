import CoreMetrics
import Synchronization

/// The saga's metrics in one process, made once at start from the process's backend and
/// handed to the services that record them.
public final class SagaMetrics: Sendable {
    public let handles: MetricHandles
    /// Per step (and `compensation`): attempts, durations, retries.
    public let steps: [String: StepMetrics]
    /// Records sent to a dead-letter or `.poison` topic, by topic.
    public let deadLetters: HandleFamily<Counter>
    public let orders: OrderMetrics
    /// Undo actions: `[action, result]`.
    public let compensations: HandleFamily<Counter>
    public let manualReviewAlerts: Counter
    public let stuckOrdersRecovered: Counter
    public let sampled: SampledGauges

    public init(handles: MetricHandles, steps: [String]) {
        self.handles = handles
        self.steps = Dictionary(uniqueKeysWithValues: steps.map { ($0, StepMetrics(step: $0, handles: handles)) })
        deadLetters = HandleFamily { handles.counter(MetricCatalogue.deadLetters, $0) }
        orders = OrderMetrics(handles: handles)
        compensations = HandleFamily { handles.counter(MetricCatalogue.compensations, $0) }
        manualReviewAlerts = handles.counter(MetricCatalogue.manualReviewAlerts)
        stuckOrdersRecovered = handles.counter(MetricCatalogue.stuckOrdersRecovered)
        sampled = SampledGauges(handles: handles)
    }
}

/// What the tracker and the intake record about orders.
public struct OrderMetrics: Sendable {
    /// `[outcome, tier]`.
    public let total: HandleFamily<Counter>
    /// `[tier, outcome]`.
    public let duration: HandleFamily<CoreMetrics.Timer>
    /// `[reason]`.
    public let rejections: HandleFamily<Counter>
    public let compensationsStarted: Counter
    public let firstAccepted: ExtremeGauge
    public let lastCompleted: ExtremeGauge

    init(handles: MetricHandles) {
        total = HandleFamily { handles.counter(MetricCatalogue.ordersTotal, $0) }
        duration = HandleFamily { handles.timer(MetricCatalogue.orderDuration, $0) }
        rejections = HandleFamily { handles.counter(MetricCatalogue.rejections, $0) }
        compensationsStarted = handles.counter(MetricCatalogue.compensationsStarted)
        firstAccepted = ExtremeGauge(handles.gauge(MetricCatalogue.firstAcceptedTimestamp), keeps: .lowest)
        lastCompleted = ExtremeGauge(handles.gauge(MetricCatalogue.lastCompletedTimestamp), keeps: .highest)
        for outcome in ["accepted", "completed", "compensated", "manual_review"] {
            for tier in ["vip", "standard"] { _ = total[outcome, tier] }
        }
        _ = total["rejected", "unknown"]
        for outcome in ["completed", "compensated", "manual_review"] {
            for tier in ["vip", "standard"] { _ = duration[tier, outcome] }
        }
    }
}

/// Gauges set by sampling the broker and the stores (lag, topic sizes, pending dead
/// letters, orders in flight), not by events.
public struct SampledGauges: Sendable {
    /// `[group, topic]`.
    public let consumerLag: HandleFamily<Gauge>
    /// `[topic]`.
    public let deadLettersPending: HandleFamily<Gauge>
    /// `[topic]`.
    public let topicRecords: HandleFamily<Gauge>
    /// `[state]`.
    public let ordersInFlight: HandleFamily<Gauge>

    init(handles: MetricHandles) {
        consumerLag = HandleFamily { handles.gauge(MetricCatalogue.consumerLag, $0) }
        deadLettersPending = HandleFamily { handles.gauge(MetricCatalogue.deadLettersPending, $0) }
        topicRecords = HandleFamily { handles.gauge(MetricCatalogue.topicRecords, $0) }
        ordersInFlight = HandleFamily { handles.gauge(MetricCatalogue.ordersInFlight, $0) }
    }
}

/// What the embedded broker records.
public final class BrokerMetrics: Sendable {
    /// `[topic]`.
    public let appendedRecords: HandleFamily<Counter>
    /// `[topic]`.
    public let appendedBytes: HandleFamily<Counter>
    public let fsyncDuration: CoreMetrics.Timer

    public init(handles: MetricHandles) {
        appendedRecords = HandleFamily { handles.counter(MetricCatalogue.appendedRecords, $0) }
        appendedBytes = HandleFamily { handles.counter(MetricCatalogue.appendedBytes, $0) }
        fsyncDuration = handles.timer(MetricCatalogue.fsyncDuration)
    }

    public static let disabled = BrokerMetrics(handles: .disabled)

    public func recordFsync(_ elapsed: Duration) {
        let (seconds, attoseconds) = elapsed.components
        fsyncDuration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// What the Kafka protocol door records.
public final class WireMetrics: Sendable {
    /// `[api, error_code]`.
    public let requests: HandleFamily<Counter>
    public let connections: Gauge
    /// `[reason]`: connections a listener limit refused or cut off.
    public let refusals: HandleFamily<Counter>

    public init(handles: MetricHandles) {
        requests = HandleFamily { handles.counter(MetricCatalogue.wireRequests, $0) }
        connections = handles.gauge(MetricCatalogue.wireConnections)
        refusals = HandleFamily { handles.counter(MetricCatalogue.wireRefusals, $0) }
    }

    public static let disabled = WireMetrics(handles: .disabled)
}

/// A gauge that keeps the lowest or highest value it was offered (the first order's
/// acceptance, the last one's completion).
public final class ExtremeGauge: Sendable {
    public enum Keeps: Sendable { case lowest, highest }

    private let gauge: Gauge
    private let keeps: Keeps
    private let current = Mutex<Double?>(nil)

    public init(_ gauge: Gauge, keeps: Keeps) {
        self.gauge = gauge
        self.keeps = keeps
    }

    public func offer(_ value: Double) {
        let changed = current.withLock { current -> Bool in
            if let existing = current, keeps == .lowest ? value >= existing : value <= existing { return false }
            current = value
            return true
        }
        if changed { gauge.record(value) }
    }

    public var value: Double? { current.withLock { $0 } }
}
