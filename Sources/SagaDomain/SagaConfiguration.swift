/// The whole saga configuration (`config/fulfillment.yaml`). Every field has a default, so an
/// empty file is the seed's policy: payment retries transient errors 3 times at 2, 4, 8 s,
/// inventory retries `OutOfStock` twice at 3 s, every step times out after 5 minutes.
public struct SagaConfiguration: Hashable, Sendable {
    public var topicPrefix = ""
    public var partitions = 12
    /// Orders above this amount (in the order's currency) ride the priority topics.
    public var vipAmountThreshold: Double = 10_000
    /// While VIP orders flood in (the VIP lane keeps finding full batches), at least one
    /// standard batch in every `starvationGuard` batches.
    public var starvationGuard = 8
    public var steps: [SagaStep: StepPolicy] = SagaConfiguration.seedSteps
    /// Refund, release and cancel: retried with capped backoff; past the cap the order is
    /// parked in `orders.manual-review`.
    public var compensation = StepPolicy(
        retry: [RetryRule(errorEquals: ["States.ALL"], intervalSeconds: 1, maxAttempts: 5, backoffRate: 2, maxDelaySeconds: 30)],
        timeoutSeconds: 60)
    /// How often the watchdog looks for stuck orders, and the slack beyond a step's budget.
    public var watchdogIntervalSeconds: Double = 5
    public var watchdogGraceSeconds: Double = 30
    /// Handlers per worker running at once, and records taken per poll.
    public var concurrency = 512
    public var batchSize = 1000
    /// Catalogue of the simulated warehouse: `SKU-1` ... `SKU-n`, each with this many units.
    public var skuCount = 50
    public var initialStock = 1_000_000
    public var faultProfiles: [String: FaultProfile] = SagaConfiguration.builtInFaultProfiles
    /// The alert thresholds (`alerts:`), evaluated in process by `run` and rendered as a
    /// Prometheus rule file by `alerts rules`.
    public var alerts = AlertPolicy()

    public init() {}

    public subscript(step: SagaStep) -> StepPolicy { steps[step] ?? StepPolicy() }

    public var topics: SagaTopics { SagaTopics(prefix: topicPrefix) }

    public func faultProfile(named name: String) throws -> FaultProfile {
        guard let profile = faultProfiles[name] else {
            throw ConfigurationError(message: "unknown fault profile '\(name)'; the configuration defines: \(faultProfiles.keys.sorted().joined(separator: ", "))")
        }
        return profile
    }

    public static let seedSteps: [SagaStep: StepPolicy] = [
        .payment: StepPolicy(
            retry: [RetryRule(errorEquals: ["TransientError", "Timeout", "HeartbeatTimeout"], intervalSeconds: 2, maxAttempts: 3, backoffRate: 2)],
            nonRetryable: ["CardDeclined"]),
        .inventory: StepPolicy(
            retry: [
                RetryRule(errorEquals: ["OutOfStock"], intervalSeconds: 3, maxAttempts: 2, backoffRate: 1),
                RetryRule(errorEquals: ["TransientError", "Timeout", "HeartbeatTimeout"], intervalSeconds: 2, maxAttempts: 3, backoffRate: 2),
            ]),
        .shipping: StepPolicy(
            retry: [RetryRule(errorEquals: ["TransientError", "Timeout", "HeartbeatTimeout"], intervalSeconds: 2, maxAttempts: 3, backoffRate: 2)],
            nonRetryable: ["UnsupportedDestination"]),
        .notification: StepPolicy(
            retry: [RetryRule(errorEquals: ["TransientError", "Timeout", "HeartbeatTimeout"], intervalSeconds: 2, maxAttempts: 3, backoffRate: 2)],
            nonRetryable: ["MailboxUnavailable"]),
    ]

    public static let builtInFaultProfiles: [String: FaultProfile] = [
        "none": .none,
        "default": FaultProfile(name: "default", steps: [
            .payment: StepFaults(transient: 0.02, permanent: 0.005, undoFailure: 0.05, latencyMilliseconds: .init(p50: 1, p99: 5)),
            .inventory: StepFaults(transient: 0.01),
            .shipping: StepFaults(transient: 0.01, permanent: 0.002, latencyMilliseconds: .init(p50: 1, p99: 5)),
            .notification: StepFaults(transient: 0.01),
        ]),
        "chaos": FaultProfile(name: "chaos", steps: [
            .payment: StepFaults(transient: 0.1, hang: 0.01, permanent: 0.02, undoFailure: 0.3, latencyMilliseconds: .init(p50: 2, p99: 30)),
            .inventory: StepFaults(transient: 0.05, hang: 0.005, undoFailure: 0.1),
            .shipping: StepFaults(transient: 0.05, hang: 0.01, permanent: 0.01, undoFailure: 0.1, latencyMilliseconds: .init(p50: 2, p99: 30)),
            .notification: StepFaults(transient: 0.05, permanent: 0.005),
        ]),
    ]
}

/// A configuration problem, naming the key and the line where it is.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
