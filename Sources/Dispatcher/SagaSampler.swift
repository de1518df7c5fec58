import FulfillmentMetrics
import IOThreads
import Logging
import Messaging
import SagaDomain
import SagaRuntime
import Synchronization

/// Sets the gauges that are read off the broker and the stores rather than counted as
/// things happen: consumer lag per group and topic, records held per topic, dead letters
/// pending per dead-letter topic, orders in flight per state. Run before each scrape and
/// each alert evaluation, at most once a second.
public final class SagaSampler: Sendable {
    let broker: any MessageBroker
    let store: DispatcherStore?
    let configuration: SagaConfiguration
    let gauges: SampledGauges
    let logger: Logger
    private let lastSample = Mutex<ContinuousClock.Instant?>(nil)

    public init(broker: any MessageBroker, store: DispatcherStore?, configuration: SagaConfiguration, gauges: SampledGauges, logger: Logger) {
        self.broker = broker
        self.store = store
        self.configuration = configuration
        self.gauges = gauges
        self.logger = logger
    }

    /// Samples unless the last sample is under `freshness` old.
    public func sample(freshness: Duration = .seconds(1)) async {
        let due = lastSample.withLock { last in
            let now = ContinuousClock.now
            guard last.map({ now - $0 >= freshness }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        do {
            try await sampleNow()
        } catch {
            logger.warning("sampling the broker and stores for metrics failed", metadata: ["error.message": "\(error)"])
        }
    }

    private func sampleNow() async throws {
        let saga = Set([configuration.topics.orders, configuration.topics.ordersPriority] + SagaTracker.topics(configuration))
        for topic in try await broker.listTopics() where saga.contains(topic.name) || topic.name.hasSuffix(PoisonRecord.suffix) {
            gauges.topicRecords[topic.name].record(topic.partitions.reduce(Int64(0)) { $0 + $1.endOffset - $1.beginOffset })
        }
        for (group, lags) in try await SagaGroups.lags(broker, configuration) {
            var byTopic: [String: Int64] = [:]
            for lag in lags { byTopic[lag.topic, default: 0] += lag.lag }
            for (topic, lag) in byTopic { gauges.consumerLag[group, topic].record(lag) }
        }
        guard let store else { return }
        let letters = DeadLetters(broker: broker, store: store, topics: configuration.topics)
        for (topic, pending) in try await letters.pendingCounts() { gauges.deadLettersPending[topic].record(pending) }
        let open = try await BlockingIO.run { try store.openStateCounts() }
        for state in OrderState.allCases where !state.isFinal {
            gauges.ordersInFlight[state.rawValue].record(open[state.rawValue] ?? 0)
        }
    }
}
