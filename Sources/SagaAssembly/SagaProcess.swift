import Dispatcher
import FulfillmentMetrics
import Foundation
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import ServiceLifecycle
import StoreDatabase

/// Some roles of the saga in one process, serving until SIGINT/SIGTERM: what
/// `fulfillment worker <step>` and `fulfillment dispatcher` run against a Kafka cluster.
/// Several processes of one role share its work through the role's consumer group and share
/// its store (the same store directory on one machine).
public struct SagaProcess: Sendable {
    public let broker: any MessageBroker
    public let configuration: SagaConfiguration
    /// A directory of SQLite stores or a PostgreSQL URL.
    public let storeLocation: String
    public let roles: Set<SagaNode.Role>
    public let faults: String
    /// Create missing saga topics first (the dispatcher does; workers expect them).
    public let createTopics: Bool
    /// Where this process keeps its poison-record journals (one free slot per instance).
    public let stateDirectory: String
    /// How long a worker waits for the saga's topics (the dispatcher may be creating them).
    public let startTimeout: Duration
    /// `--http`, the admin token and the alert webhook.
    public var operatorOptions = OperatorOptions()
    let logger: Logger

    public init(
        broker: any MessageBroker, configuration: SagaConfiguration, storeLocation: String, roles: Set<SagaNode.Role>,
        faults: String, createTopics: Bool, stateDirectory: String = "./fulfillment-state", startTimeout: Duration = .seconds(30), logger: Logger
    ) {
        self.startTimeout = startTimeout
        self.stateDirectory = stateDirectory
        self.broker = broker
        self.configuration = configuration
        self.storeLocation = storeLocation
        self.roles = roles
        self.faults = faults
        self.createTopics = createTopics
        self.logger = logger
    }

    /// Serves; `status` gets a line at start, every `statusInterval` and at the end.
    public func run(statusInterval: Duration = .seconds(10), status: @escaping @Sendable (String) -> Void) async throws {
        if createTopics {
            try await SagaTopology.create(configuration, on: broker, logger: logger)
        } else {
            try await requireTopics()
        }
        let label = roles.map(\.rawValue).sorted().joined(separator: "+")
        let journals = try PoisonJournals.firstFree(base: stateDirectory, label: label, logger: logger)
        var operatorOptions = self.operatorOptions
        if operatorOptions.generatedTokenFile == nil {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
            operatorOptions.generatedTokenFile = stateDirectory + "/admin-token"
        }
        let operatorSide = OperatorAssembly(options: operatorOptions, logger: logger)
        let readiness = operatorSide.readiness
        let node = try SagaNode(
            broker: broker, configuration: configuration, storeLocation: storeLocation, faults: try configuration.faultProfile(named: faults),
            roles: roles, journals: journals, metrics: operatorSide.backend.handles, onConsumerReady: { readiness.set($0, true) }, logger: logger)
        try await node.prepareStores()
        // Only a process hosting the dispatcher takes admin writes (orders, redrive).
        let adminToken = roles.contains(.dispatcher) ? try operatorSide.adminToken(announce: status) : nil
        let operatorServices = operatorSide.services(
            node: node, broker: broker, configuration: configuration, role: label, adminToken: adminToken, notice: status)
        var groupConfiguration = ServiceGroupConfiguration(
            services: (try node.services() + operatorServices).map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A stop must end even when the brokers are gone (finishing work then needs them):
        // past 30 s the services are cancelled, past 10 s more the process ends. What was not
        // committed is redelivered to the next instance, where it is a no-op (idempotency).
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(30)
        groupConfiguration.maximumCancellationDuration = .seconds(10)
        let group = ServiceGroup(configuration: groupConfiguration)
        let names = roles.map(\.rawValue).sorted().joined(separator: ", ")
        status("serving \(names) (stores in \(StoreConnection.isPostgres(storeLocation) ? "PostgreSQL" : storeLocation), concurrency \(configuration.concurrency)); stop with SIGINT/SIGTERM")
        let backend = operatorSide.backend
        let report: @Sendable () -> String = {
            StatusLine.make(roles: roles, configuration: configuration, snapshot: backend.snapshot(at: 0))
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                while true {
                    try await Task.sleep(for: statusInterval)
                    status(report())
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
        status("stopped · " + report())
    }

    /// Workers do not create topics: a missing one means the topology was never set up (or a
    /// different configuration made it), which the user should hear about at once.
    /// Waits up to `startTimeout` for them: a dispatcher starting at the same time makes them.
    private func requireTopics() async throws {
        let missingTopics = BrokerError.Code(name: "missing_topics", isRetriable: true)
        do {
            try await BrokerWait.retrying("checking the saga's topics", target: "the saga's topics", timeout: startTimeout, status: { self.logger.notice("\($0)") }) {
                let existing = Set(try await broker.listTopics().map(\.name))
                let missing = SagaTopology.specs(configuration).map(\.name).filter { !existing.contains($0) }
                guard missing.isEmpty else {
                    throw BrokerError(missingTopics, "missing: \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", ..." : "")")
                }
            }
        } catch let error as BrokerError where error.code == missingTopics {
            throw BrokerError(.unknownTopic, "the saga's topics are not all there (\(error.message)); start the dispatcher first or run `fulfillment topics create --saga --brokers ...`")
        }
    }
}

/// A worker or dispatcher process's periodic status line, read from its own metrics.
enum StatusLine {
    static func make(roles: Set<SagaNode.Role>, configuration: SagaConfiguration, snapshot: MetricsSnapshot) -> String {
        let attempts = MetricCatalogue.stepAttempts.name
        return roles.map(\.rawValue).sorted().map { role in
            if role == SagaNode.Role.dispatcher.rawValue {
                let orders = snapshot.sums(MetricCatalogue.ordersTotal.name, by: "outcome")
                let figures = ["accepted", "rejected", "completed", "compensated", "manual_review"].map { "\($0.replacingOccurrences(of: "_", with: "-")) \(Int(orders[$0] ?? 0))" }
                return "dispatcher: " + figures.joined(separator: ", ")
            }
            let results = snapshot.sums(attempts, by: "result", ["step": role])
            let retried = snapshot.sum(MetricCatalogue.retries.name, ["step": role])
            let step = SagaStep(rawValue: role)
            let deadLetters = snapshot.sum(MetricCatalogue.deadLetters.name, ["topic": configuration.topics.deadLetter(step)])
            return "\(role): attempts \(Int(results.values.reduce(0, +))), ok \(Int(results["ok"] ?? 0)), retried \(Int(retried)), dead-lettered \(Int(deadLetters))"
        }.joined(separator: " · ")
    }
}
