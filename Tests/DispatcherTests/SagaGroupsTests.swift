import Broker
import Messaging
import SagaDomain
import TestSupport
import Testing
@testable import Dispatcher

/// Lag as `stats`, `/api/topics`, the console and the metrics report it.
@Suite struct SagaGroupsTests {
    let temporary = TemporaryDirectory("saga-groups")
    let configuration = SagaConfiguration()

    /// Payment requests wait and no payment worker ever ran: its groups have no member and no
    /// commit, so the broker does not know them. They are listed, with the whole backlog,
    /// beside every other group of the saga and a group the broker knows from its commits.
    @Test func aGroupWhoseWorkersNeverRanLagsByItsWholeBacklog() async throws {
        let (broker, _) = try quietBroker(temporary.path + "/broker", label: "saga-groups-test")
        defer { broker.shutdown() }
        let topics = configuration.topics
        for name in [topics.requested(.payment), topics.requested(.payment, priority: .vip), "audit.copies"] {
            try await broker.createTopic(TopicSpec(name: name, partitions: 2))
        }
        _ = try await broker.produce((0..<5).map { ProducerRecord(topic: topics.requested(.payment), partition: $0 % 2, key: nil, value: [1]) })
        _ = try await broker.produce((0..<2).map { ProducerRecord(topic: topics.requested(.payment, priority: .vip), partition: $0 % 2, key: nil, value: [1]) })
        _ = try await broker.produce([ProducerRecord(topic: "audit.copies", partition: 0, key: nil, value: [1])])
        let reader = try await broker.makeConsumer(group: "audit-reader", topics: ["audit.copies"], configuration: ConsumerConfiguration())
        _ = try await reader.poll(maxRecords: 0, maxWait: .zero)
        try await reader.commit([TopicPartition("audit.copies", 0): 1])
        await reader.close()

        let lags = try await SagaGroups.lags(broker, configuration).mapValues { $0.reduce(Int64(0)) { $0 + $1.lag } }
        #expect(lags["payment"] == 5)
        #expect(lags["payment.priority"] == 2)
        #expect(lags[SagaTracker.group] == 7, "the tracker reads the payment requests too")
        #expect(lags["audit-reader"] == 0)
        #expect(Set(lags.keys) == Set(SagaGroups.all(configuration).keys).union(["audit-reader"]))
    }

    /// The step workers and the compensation worker subscribe to what `SagaGroups` lists.
    @Test func aStepsGroupsReadItsRequestsRetriesAndVIPRequests() {
        let groups = SagaGroups.all(configuration)
        let topics = configuration.topics
        let retries = (0..<configuration[.shipping].retryTiers).map { topics.retry(.shipping, tier: $0 + 1) }
        #expect(groups["shipping"] == [topics.requested(.shipping)] + retries)
        #expect(groups["shipping.priority"] == [topics.requested(.shipping, priority: .vip)])
        #expect(groups["compensation"]?.first == topics.compensation)
        #expect(groups["dispatcher"] == [topics.orders])
    }
}
