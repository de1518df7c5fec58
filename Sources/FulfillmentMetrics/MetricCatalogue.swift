/// One metric the product exposes: name, kind, help text and label names.
public struct MetricDefinition: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case counter
        case gauge
        /// Bucket upper bounds in the metric's unit (seconds for `_seconds`).
        case histogram(buckets: [Double])
    }

    public let name: String
    public let kind: Kind
    public let help: String
    public let labels: [String]
}

/// Every metric of the product in one place (documented in docs/metrics.md): Prometheus
/// conventions — prefix `fulfillment_`, base units, counters end in `_total`, histograms
/// rather than summaries, and only bounded labels (a step, an outcome, a tier, a topic, an
/// error class; never an order id).
public enum MetricCatalogue {
    /// Order end-to-end: accepted at intake to a terminal state. Bounds at the seed's VIP
    /// (2 min) and standard (5 min) latency goals, so the alerts on them are exact.
    public static let orderDurationBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
    /// One attempt of a step.
    public static let stepDurationBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
    /// One group-commit fsync round.
    public static let fsyncBuckets: [Double] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]

    // MARK: Orders (the dispatcher: intake and tracker)

    public static let ordersTotal = MetricDefinition(
        name: "fulfillment_orders_total", kind: .counter,
        help: "Orders by outcome: accepted or rejected at intake, then completed, compensated or parked in manual review (tier: vip, standard; unknown for a rejection without one).",
        labels: ["outcome", "tier"])
    public static let orderDuration = MetricDefinition(
        name: "fulfillment_order_duration_seconds", kind: .histogram(buckets: orderDurationBuckets),
        help: "Seconds from an order's acceptance to its terminal state.", labels: ["tier", "outcome"])
    public static let rejections = MetricDefinition(
        name: "fulfillment_rejections_total", kind: .counter, help: "Orders rejected at intake, by machine-readable reason.", labels: ["reason"])
    public static let compensationsStarted = MetricDefinition(
        name: "fulfillment_compensations_started_total", kind: .counter,
        help: "Orders whose compensation was requested (each order counted once).", labels: [])
    public static let ordersInFlight = MetricDefinition(
        name: "fulfillment_orders_in_flight", kind: .gauge,
        help: "Orders accepted and not finished, by state (manual_review: parked, waiting for an operator).", labels: ["state"])
    public static let firstAcceptedTimestamp = MetricDefinition(
        name: "fulfillment_orders_first_accepted_timestamp_seconds", kind: .gauge,
        help: "When the first order the tracker knows was accepted (Unix seconds).", labels: [])
    public static let lastCompletedTimestamp = MetricDefinition(
        name: "fulfillment_orders_last_completed_timestamp_seconds", kind: .gauge,
        help: "When the last completed order finished (Unix seconds).", labels: [])
    public static let manualReviewAlerts = MetricDefinition(
        name: "fulfillment_manual_review_alerts_total", kind: .counter, help: "Alerts raised for orders parked in orders.manual-review.", labels: [])
    public static let stuckOrdersRecovered = MetricDefinition(
        name: "fulfillment_stuck_orders_recovered_total", kind: .counter,
        help: "Orders the watchdog found stuck past their step budget and acted on.", labels: [])

    // MARK: Steps (the worker runtime)

    public static let stepAttempts = MetricDefinition(
        name: "fulfillment_step_attempts_total", kind: .counter,
        help: "Attempts of a step by result: ok, retryable, non_retryable, timeout, heartbeat_missed.", labels: ["step", "result"])
    public static let stepDuration = MetricDefinition(
        name: "fulfillment_step_duration_seconds", kind: .histogram(buckets: stepDurationBuckets),
        help: "Seconds one attempt of a step took.", labels: ["step"])
    public static let duplicates = MetricDefinition(
        name: "fulfillment_duplicates_total", kind: .counter,
        help: "Messages a step had handled already (redelivered, redriven, recovered): its recorded outcome was published again and nothing was redone.",
        labels: ["step"])
    public static let retries = MetricDefinition(
        name: "fulfillment_retries_total", kind: .counter, help: "Failed attempts sent to a retry tier, by step and customer tier.", labels: ["step", "tier"])
    public static let deadLetters = MetricDefinition(
        name: "fulfillment_dead_letters_total", kind: .counter,
        help: "Records sent to a dead-letter or poison topic.", labels: ["topic"])
    public static let compensations = MetricDefinition(
        name: "fulfillment_compensations_total", kind: .counter,
        help: "Undo actions by action (refund, release, cancel) and result (ok, failed).", labels: ["action", "result"])

    // MARK: Sampled from the broker and the stores

    public static let deadLettersPending = MetricDefinition(
        name: "fulfillment_dead_letters_pending", kind: .gauge,
        help: "Dead letters not yet redriven, per dead-letter topic (orders.manual-review and .poison topics included).", labels: ["topic"])
    public static let topicRecords = MetricDefinition(
        name: "fulfillment_topic_records", kind: .gauge, help: "Records a topic holds (end minus start offsets over its partitions).", labels: ["topic"])
    public static let consumerLag = MetricDefinition(
        name: "fulfillment_consumer_lag", kind: .gauge,
        help: "Records not yet consumed by a group, per topic (kafka_exporter: kafka_consumergroup_lag_sum).", labels: ["group", "topic"])

    // MARK: Broker and wire door

    public static let appendedRecords = MetricDefinition(
        name: "fulfillment_broker_appended_records_total", kind: .counter, help: "Records appended to the embedded broker's logs.", labels: ["topic"])
    public static let appendedBytes = MetricDefinition(
        name: "fulfillment_broker_appended_bytes_total", kind: .counter, help: "Bytes of record batches appended to the embedded broker's logs.", labels: ["topic"])
    public static let fsyncDuration = MetricDefinition(
        name: "fulfillment_broker_fsync_duration_seconds", kind: .histogram(buckets: fsyncBuckets),
        help: "Seconds one group-commit round took to make appended data durable.", labels: [])
    public static let wireRequests = MetricDefinition(
        name: "fulfillment_wire_requests_total", kind: .counter,
        help: "Kafka protocol requests answered, by API and error code (NONE when it succeeded).", labels: ["api", "error_code"])
    public static let wireConnections = MetricDefinition(
        name: "fulfillment_wire_connections", kind: .gauge, help: "Open Kafka protocol connections.", labels: [])
    public static let wireRefusals = MetricDefinition(
        name: "fulfillment_wire_refused_total", kind: .counter,
        help: "Kafka protocol connections refused or cut off by a listener limit, by reason.", labels: ["reason"])

    public static let all: [MetricDefinition] = [
        ordersTotal, orderDuration, rejections, compensationsStarted, ordersInFlight, firstAcceptedTimestamp, lastCompletedTimestamp,
        manualReviewAlerts, stuckOrdersRecovered, stepAttempts, stepDuration, duplicates, retries, deadLetters, compensations, deadLettersPending,
        topicRecords, consumerLag, appendedRecords, appendedBytes, fsyncDuration, wireRequests, wireConnections, wireRefusals,
    ]

    private static let byName: [String: MetricDefinition] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    public static func named(_ name: String) -> MetricDefinition? { byName[name] }
}
