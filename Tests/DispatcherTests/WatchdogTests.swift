import Broker
import FulfillmentMetrics
import Messaging
import MetricsTestKit
import SagaDomain
import TestSupport
import Testing
@testable import Dispatcher

/// When the watchdog calls an order stuck, on both store backends.
@Suite struct WatchdogTests {
    let temporary = TemporaryDirectory("watchdog")
    let configuration = SagaConfiguration()

    /// A worker killed on a cluster keeps its partitions for its group's session timeout,
    /// and the whole group pauses to rebalance: nothing is lost, the step only stops. An
    /// order queued there past the step's worst case and the grace is not stuck yet; it is
    /// once the failover time has passed too. (With budgets shorter than that, a chaos run
    /// on Kafka compensated, then parked, most of its orders.)
    @Test(arguments: StoreBackend.allCases) func anOrderIsNotStuckBeforeACrashedWorkersPartitionsCouldMove(_ backend: StoreBackend) async throws {
        let fixture = try TrackerFixture(backend, in: temporary, configuration: configuration)
        defer { fixture.broker.shutdown() }
        let (broker, store) = (fixture.broker, fixture.store)
        let requests = configuration.topics.requested(.payment)
        try await broker.createTopic(TopicSpec(name: requests, partitions: 1))
        let since: Int64 = 1_000_000
        try store.connection.run(
            "INSERT INTO orders (order_id, body, amount_cents, units, tier, priority, state, created_at, updated_at) VALUES ('o-1', ?, 4200, 1, 'standard', 'standard', 'payment', ?, ?)",
            [.blob(DispatcherDecisionTests.orderJSON("o-1")), .integer(since), .integer(since)])
        try store.connection.run("INSERT INTO open_orders VALUES ('o-1')")
        let handles = MetricHandles(factory: TestMetrics())
        let watchdog = Watchdog(broker: broker, store: store, configuration: configuration, recovered: handles.counter(MetricCatalogue.stuckOrdersRecovered),
                                alerts: handles.counter(MetricCatalogue.manualReviewAlerts), logger: fixture.logger)

        let worstCaseAndGrace = Int64((configuration[.payment].budgetSeconds + configuration.watchdogGraceSeconds) * 1000)
        #expect(Watchdog.memberFailoverSeconds == 10)
        #expect(watchdog.budgetMilliseconds(.payment) == worstCaseAndGrace + 10_000)
        #expect(try await watchdog.sweep(now: since + worstCaseAndGrace + 5_000) == 0, "within the failover time: still waiting")
        #expect(try await broker.describeTopic(requests).partitions[0].endOffset == 0)

        #expect(try await watchdog.sweep(now: since + worstCaseAndGrace + 10_001) == 1, "past it: stuck, its request published again")
        let republished = try await broker.read(topic: requests, partition: 0, from: 0, maxRecords: 10)
        #expect(republished.map(\.keyString) == ["o-1"])
        #expect(republished.first?.header(SagaHeader.recoveredBy) == "watchdog")
    }
}
