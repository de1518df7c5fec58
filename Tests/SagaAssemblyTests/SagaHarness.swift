import Broker
import Dispatcher
import Foundation
import Logging
import Messaging
import OperatorHTTP
import SagaAssembly
import SagaDomain
import ServiceLifecycle
import StoreDatabase
import TestSupport
import Testing

/// The whole saga in-process on a fresh data directory, with the fast profile (the seed's
/// policy shape in fractions of a second), the real broker and real SQLite files.
final class SagaHarness: @unchecked Sendable {
    // Safe: `running` is set in `start` and read in `stop`, both called from the test's task.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func fastConfiguration() throws -> SagaConfiguration {
        try SagaConfiguration.load(path: repositoryRoot.appendingPathComponent("config/profiles/fast.yaml").path)
    }

    let directory: String
    /// Where the stores are: `directory` itself (SQLite) or a fresh PostgreSQL database.
    let storeLocation: String
    let configuration: SagaConfiguration
    let broker: EmbeddedBroker
    let node: SagaNode
    /// What the node records, read back as Prometheus would scrape it.
    let metrics = PrometheusBackend()
    private var group: ServiceGroup?
    private var running: Task<Void, any Error>?

    init(configuration: SagaConfiguration? = nil, faults: FaultProfile = .none, directory: String? = nil, stores: StoreBackend = .sqlite) async throws {
        self.directory = directory ?? NSTemporaryDirectory() + "saga-test-\(UUID().uuidString.prefix(8))"
        storeLocation = try stores.freshLocation(directory: self.directory)
        self.configuration = try configuration ?? Self.fastConfiguration()
        var logger = Logger(label: "saga-test")
        logger.logLevel = .critical
        var brokerConfiguration = EmbeddedBroker.Configuration(dataDirectory: self.directory)
        brokerConfiguration.retentionCheckInterval = nil
        broker = try EmbeddedBroker(configuration: brokerConfiguration, logger: logger)
        try await SagaTopology.create(self.configuration, on: broker)
        node = try SagaNode(
            broker: broker, configuration: self.configuration, storeLocation: storeLocation, faults: faults, metrics: metrics.handles, logger: logger)
        // As the product's commands do before any service runs.
        try await node.prepareStores()
    }

    func start(_ roles: Set<SagaNode.Role> = Set(SagaNode.Role.allCases)) throws {
        var logger = Logger(label: "saga-test")
        logger.logLevel = .critical
        let group = ServiceGroup(configuration: .init(services: try node.services(roles).map { .init(service: $0) }, logger: logger))
        self.group = group
        running = Task { try await group.run() }
    }

    func stop() async {
        await group?.triggerGracefulShutdown()
        _ = try? await running?.value
        group = nil
        running = nil
    }

    func finish() async {
        await stop()
        broker.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func order(
        _ id: String, token: String = "tok_visa", sku: String = "SKU-1", quantity: Int = 1, price: Double = 10,
        tier: CustomerTier = .standard, country: String = "US", line1: String = "1 Main St", email: String = "buyer@example.com"
    ) -> Order {
        Order(
            orderID: id, customerID: "c-1", customerTier: tier, currency: "USD",
            items: [OrderItem(sku: sku, quantity: quantity, unitPrice: price)],
            payment: PaymentDetails(method: "card", token: token),
            shippingAddress: ShippingAddress(name: "A. Buyer", line1: line1, city: "Springfield", postalCode: "12345", country: country),
            email: email)
    }

    func submit(_ orders: [Order]) async throws {
        _ = try await broker.produce(orders.map { ProducerRecord(topic: configuration.topics.orders, key: Array($0.orderID.utf8), value: $0.canonicalJSON()) })
    }

    func submitRaw(_ payload: [UInt8], key: String?) async throws {
        _ = try await broker.produce(ProducerRecord(topic: configuration.topics.orders, key: key.map { Array($0.utf8) }, value: payload))
    }

    /// Waits until every order is terminal (completed, compensated or parked); returns their records.
    @discardableResult
    func waitUntilTerminal(_ ids: [String], timeout: Duration = .seconds(60)) async throws -> [String: DispatcherStore.OrderRecord] {
        let deadline = ContinuousClock.now + timeout
        while true {
            var records: [String: DispatcherStore.OrderRecord] = [:]
            for id in ids {
                if let record = try node.dispatcherStore!.order(id), OrderState(rawValue: record.state)?.isTerminal == true { records[id] = record }
            }
            if records.count == ids.count { return records }
            if ContinuousClock.now > deadline {
                let pending = ids.filter { records[$0] == nil }.prefix(5).map { id in "\(id): \((try? node.dispatcherStore!.order(id)?.state) ?? "unknown")" }
                throw HarnessError(message: "\(ids.count - records.count) of \(ids.count) orders not terminal after \(timeout): \(pending.joined(separator: ", "))")
            }
            try await Task.sleep(for: .milliseconds(25))
        }
    }

    /// The sum of a metric's series whose labels include `labels`.
    func metric(_ name: String, _ labels: [String: String] = [:]) -> Double {
        metrics.snapshot(at: 0).sum(name, labels)
    }

    func history(_ id: String) throws -> [DispatcherStore.HistoryEntry] { try node.dispatcherStore!.history(id) }

    func check() throws -> ConservationCheck.Report { try ConservationCheck(location: storeLocation).run() }

    /// Ledger rows of an order as `kind:outcome:amount`.
    func ledger(_ id: String) throws -> [String] {
        try node.gateway!.ledger.query("SELECT kind || ':' || outcome || ':' || amount_cents FROM ledger WHERE order_id = ? ORDER BY kind", [.text(id)]) { $0.text(0) }
    }

    func reservation(_ id: String) throws -> String? {
        try node.inventory!.connection.query("SELECT status FROM reservations WHERE order_id = ?", [.text(id)]) { $0.text(0) }.first
    }

    func shipment(_ id: String) throws -> String? {
        try node.shipping!.connection.query("SELECT status FROM shipments WHERE order_id = ?", [.text(id)]) { $0.text(0) }.first
    }

    func notice(_ id: String) throws -> String? { try node.notifications!.notice(orderID: id) }

    func stock(_ sku: String) throws -> Int? { try node.inventory!.units(of: sku) }
}

struct HarnessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
