import Dispatcher
import FulfillmentMetrics
import Foundation
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import ServiceLifecycle
import StoreDatabase
import Workers

/// Everything one process runs of the saga: its stores (SQLite files in the store directory,
/// or schemas of one PostgreSQL database) and its services. `fulfillment run` hosts every
/// role; `worker <step>` and `dispatcher` host some, and open only the stores those roles use.
public final class SagaNode: Sendable {
    public enum Role: String, CaseIterable, Sendable {
        case dispatcher
        case payment
        case inventory
        case shipping
        case notification
        case compensation

        /// The stores a role reads and writes.
        var stores: Set<Store> {
            switch self {
            case .dispatcher: [.dispatcher]
            case .payment: [.payments]
            case .inventory: [.inventory]
            case .shipping: [.shipping]
            case .notification: [.notifications]
            case .compensation: [.payments, .inventory, .shipping, .notifications]
            }
        }
    }

    enum Store {
        case dispatcher, payments, inventory, shipping, notifications
    }

    public let configuration: SagaConfiguration
    /// Where the stores are: a directory of SQLite files or a PostgreSQL URL.
    public let storeLocation: String
    public let broker: any MessageBroker
    public let world: SimulatedWorld
    public let roles: Set<Role>
    public let payments: PaymentStore?
    public let gateway: SimulatedPaymentGateway?
    public let inventory: InventoryStore?
    public let shipping: ShippingStore?
    public let notifications: NotificationStore?
    public let dispatcherStore: DispatcherStore?
    /// What the services record (through the backend the process chose).
    public let metrics: SagaMetrics
    /// Told the name of each consumer group once its runtime has joined (for `/readyz`).
    public let onConsumerReady: @Sendable (String) -> Void
    /// Where the consumers note the records in hand (poison quarantine); nil: no quarantine.
    public let journals: PoisonJournals?
    let logger: Logger

    public init(
        broker: any MessageBroker, configuration: SagaConfiguration, storeLocation: String, faults: FaultProfile,
        roles: Set<Role> = Set(Role.allCases), stockFile: [String: Int]? = nil, journals: PoisonJournals? = nil,
        metrics: MetricHandles = .disabled, onConsumerReady: @escaping @Sendable (String) -> Void = { _ in }, logger: Logger
    ) throws {
        self.metrics = SagaMetrics(handles: metrics, steps: SagaStep.allCases.map(\.rawValue) + ["compensation"])
        self.onConsumerReady = onConsumerReady
        self.journals = journals
        self.broker = broker
        self.roles = roles
        self.configuration = configuration
        self.storeLocation = storeLocation
        self.logger = logger
        world = SimulatedWorld(profile: faults)
        if !StoreConnection.isPostgres(storeLocation) {
            try FileManager.default.createDirectory(atPath: storeLocation, withIntermediateDirectories: true)
        }
        let stores = roles.reduce(into: Set<Store>()) { $0.formUnion($1.stores) }
        payments = stores.contains(.payments) ? try PaymentStore(location: storeLocation) : nil
        gateway = stores.contains(.payments) ? try SimulatedPaymentGateway(location: storeLocation, world: world) : nil
        inventory = stores.contains(.inventory) ? try InventoryStore(location: storeLocation) : nil
        try inventory?.seedIfEmpty(skuCount: configuration.skuCount, units: configuration.initialStock, stockFile: stockFile)
        shipping = stores.contains(.shipping) ? try ShippingStore(location: storeLocation) : nil
        notifications = stores.contains(.notifications) ? try NotificationStore(location: storeLocation) : nil
        dispatcherStore = stores.contains(.dispatcher) ? try DispatcherStore(location: storeLocation) : nil
        // Dead letters start at zero on every dead-letter topic, so a first one shows as an increase.
        for topic in configuration.topics.stepDeadLetters + [configuration.topics.deadLetter(nil)] { _ = self.metrics.deadLetters[topic] }
    }

    /// Checks the stores belong to this log and settles where the tracker starts on partitions
    /// it never read (`SagaTracker.prepareStore`). Called once, before `services()` run.
    public func prepareStores() async throws {
        if let dispatcherStore {
            try await SagaTracker.prepareStore(dispatcherStore, location: storeLocation, broker: broker)
        }
    }

    /// The consumer groups the node's services join (what `/readyz` waits for).
    public var consumerGroups: [String] {
        Role.allCases.filter(roles.contains).flatMap { role in
            role == .dispatcher ? ["dispatcher", SagaTracker.group, "compensation-driver"] : [role.rawValue]
        }
    }

    /// The services of the node's roles (or of some of them: tests start roles one by one).
    public func services(_ only: Set<Role>? = nil) throws -> [any Service] {
        let roles = only.map { $0.intersection(self.roles) } ?? self.roles
        let t = configuration.topics
        let messages = SagaMessages(topics: t)
        var services: [any Service] = []
        let journals = self.journals
        func journal(_ consumer: String) throws -> PoisonJournal? { try journals?.journal(consumer) }
        let metrics = self.metrics
        let onConsumerReady = self.onConsumerReady
        func runtime<H: StepHandler>(_ handler: H, step: SagaStep?, standard: [String], priority: [String], policy: StepPolicy) throws -> any Service {
            var c = WorkerRuntimeConfiguration(
                group: handler.name, standardTopics: standard, priorityTopics: priority, policy: policy,
                router: RetryRouter(policy: policy, retryTopic: { t.retry(step, tier: $0) }, deadLetterTopic: t.deadLetter(step)))
            c.concurrency = configuration.concurrency
            c.batchSize = configuration.batchSize
            c.starvationGuard = configuration.starvationGuard
            c.journal = try journal(handler.name)
            c.metrics = RuntimeMetrics(step: metrics.steps[step?.rawValue ?? "compensation"], deadLetters: metrics.deadLetters)
            let group = c.group
            c.onReady = { onConsumerReady(group) }
            return SpecializedRuntime(WorkerRuntime(broker: broker, handler: handler, configuration: c, logger: logger))
        }
        func stepRuntime<H: StepHandler>(_ handler: H, _ step: SagaStep) throws -> any Service {
            let lanes = SagaGroups.stepLanes(step, configuration)
            return try runtime(handler, step: step, standard: lanes.standard, priority: lanes.priority, policy: configuration[step])
        }
        if roles.contains(.dispatcher), let dispatcherStore {
            let intake = OrderIntake(store: dispatcherStore, vipThreshold: configuration.vipAmountThreshold, messages: messages)
            var intakeRuntime = WorkerRuntimeConfiguration(
                group: SagaGroups.intake, standardTopics: [t.orders], priorityTopics: [t.ordersPriority], policy: StepPolicy(timeoutSeconds: 30),
                router: RetryRouter(policy: StepPolicy(), retryTopic: { _ in t.rejected }, deadLetterTopic: t.rejected))
            intakeRuntime.batchSize = configuration.batchSize
            intakeRuntime.concurrency = configuration.concurrency
            intakeRuntime.starvationGuard = configuration.starvationGuard
            intakeRuntime.journal = try journal("dispatcher")
            intakeRuntime.poisonOutcome = { message, reason in [intake.poisonRejection(message, reason: reason)] }
            intakeRuntime.metrics = RuntimeMetrics(step: nil, deadLetters: metrics.deadLetters)
            intakeRuntime.onReady = { onConsumerReady("dispatcher") }
            services.append(SpecializedRuntime(WorkerRuntime(broker: broker, handler: intake, configuration: intakeRuntime, logger: logger)))
            var tracker = SagaTracker(
                broker: broker, store: dispatcherStore, configuration: configuration, journal: try journal("tracker"), metrics: metrics.orders, logger: logger)
            tracker.onReady = { onConsumerReady("tracker") }
            services.append(tracker)
            var driver = CompensationDriver(
                broker: broker, store: dispatcherStore, configuration: configuration, alerts: metrics.manualReviewAlerts, journal: try journal("compensation-driver"),
                metrics: RuntimeMetrics(step: nil, deadLetters: metrics.deadLetters), logger: logger)
            driver.onReady = { onConsumerReady("compensation-driver") }
            services.append(driver)
            services.append(Watchdog(
                broker: broker, store: dispatcherStore, configuration: configuration, recovered: metrics.stuckOrdersRecovered, alerts: metrics.manualReviewAlerts,
                logger: logger))
        }
        if roles.contains(.payment), let payments, let gateway {
            services.append(try stepRuntime(PaymentHandler(store: payments, gateway: gateway, messages: messages), .payment))
        }
        if roles.contains(.inventory), let inventory {
            services.append(try stepRuntime(InventoryHandler(store: inventory, world: world, messages: messages), .inventory))
        }
        if roles.contains(.shipping), let shipping {
            services.append(try stepRuntime(ShippingHandler(store: shipping, world: world, messages: messages), .shipping))
        }
        if roles.contains(.notification), let notifications {
            services.append(try stepRuntime(NotificationHandler(store: notifications, world: world, messages: messages), .notification))
        }
        if roles.contains(.compensation), let payments, let gateway, let inventory, let shipping, let notifications {
            let handler = CompensationHandler(
                payments: payments, gateway: gateway, inventory: inventory, shipping: shipping, notifications: notifications, world: world, messages: messages,
                actions: metrics.compensations)
            services.append(try runtime(
                handler, step: nil, standard: SagaGroups.compensationTopics(configuration), priority: [], policy: configuration.compensation))
        }
        return services
    }
}

/// A worker runtime run through a closure made where its handler's type is known, so the
/// optimizer specializes the runtime for that handler. Called through `any Service`, the
/// runtime's generic code ran unspecialized and looked up type metadata at run time on every
/// message: wrapped, `run --orders 100000` goes 19 % faster (docs/performance.md).
struct SpecializedRuntime: Service, CustomStringConvertible {
    let body: @Sendable () async throws -> Void
    /// The runtime's own type name (`WorkerRuntime<PaymentHandler>`), for ServiceGroup's logs.
    let description: String

    init<H: StepHandler>(_ runtime: WorkerRuntime<H>) {
        body = { try await runtime.run() }
        description = String(describing: type(of: runtime))
    }

    func run() async throws { try await body() }
}
