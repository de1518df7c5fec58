import Broker
import FulfillmentMetrics
import Logging
import MetricsTestKit
import SagaDomain
import TestSupport
@testable import Dispatcher

/// A tracker on a fresh store of `backend`, over a real embedded broker, with the metrics it
/// records kept for the test to read. The caller shuts the broker down.
struct TrackerFixture {
    let broker: EmbeddedBroker
    let location: String
    let logger: Logger
    let store: DispatcherStore
    let recorded = TestMetrics()
    let metrics: OrderMetrics
    let tracker: SagaTracker

    init(_ backend: StoreBackend, in temporary: TemporaryDirectory, configuration: SagaConfiguration) throws {
        location = try backend.freshLocation(directory: temporary.path + "/stores")
        (broker, logger) = try quietBroker(temporary.path + "/broker", label: "tracker-test")
        store = try DispatcherStore(location: location)
        metrics = SagaMetrics(handles: MetricHandles(factory: recorded), steps: []).orders
        tracker = SagaTracker(broker: broker, store: store, configuration: configuration, metrics: metrics, logger: logger)
    }

    /// A watchdog over this fixture's broker and store, its counters recorded nowhere.
    func watchdog(_ configuration: SagaConfiguration) -> Watchdog {
        let handles = MetricHandles(factory: TestMetrics())
        return Watchdog(broker: broker, store: store, configuration: configuration, recovered: handles.counter(MetricCatalogue.stuckOrdersRecovered),
                        alerts: handles.counter(MetricCatalogue.manualReviewAlerts), logger: logger)
    }

    func counted(_ outcome: String, _ tier: Priority = .standard) throws -> Int64 {
        try recorded.expectCounter(metrics.total[outcome, tier.rawValue]).totalValue
    }
}
