import Alerting
import Dispatcher
import Logging
import Messaging
import SagaDomain

/// Everything the operator listener of one process serves from. A worker process has no
/// dispatcher store (its order, stats and dead-letter routes say so); the `broker` command
/// has no saga at all (health, metrics and topics only).
public struct OperatorSurface: Sendable {
    public var broker: any MessageBroker
    public var configuration: SagaConfiguration
    public var backend: PrometheusBackend
    public var readiness: Readiness
    /// The dispatcher's store, in processes that host the dispatcher (`run`, `dispatcher`).
    public var dispatcherStore: DispatcherStore?
    /// The in-process alerts (`run`, `dispatcher`).
    public var alerts: AlertBoard?
    /// Sets the sampled gauges before a scrape (lag, topic sizes, pending dead letters).
    public var sampler: SagaSampler?
    /// Writes need it as a bearer token; nil: this process takes no writes.
    public var adminToken: AdminToken?
    /// Which role the process plays, for `/healthz` and the console.
    public var role: String
    public var logger: Logger

    public init(
        broker: any MessageBroker, configuration: SagaConfiguration, backend: PrometheusBackend, readiness: Readiness, role: String, logger: Logger
    ) {
        self.broker = broker
        self.configuration = configuration
        self.backend = backend
        self.readiness = readiness
        self.role = role
        self.logger = logger
    }
}
