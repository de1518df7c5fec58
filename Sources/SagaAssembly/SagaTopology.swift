import Broker
import Logging
import Messaging
import SagaDomain

/// Every topic the saga uses, with its partitions and, for retry tiers, its delivery delay.
public enum SagaTopology {
    public static func specs(_ configuration: SagaConfiguration) -> [TopicSpec] {
        let t = configuration.topics
        let p = configuration.partitions
        var specs = [t.orders, t.ordersPriority, t.rejected, t.completed, t.compensated, t.manualReview, t.compensation, t.deadLetter(nil)].map { TopicSpec(name: $0, partitions: p) }
        for step in SagaStep.allCases {
            specs.append(TopicSpec(name: t.requested(step), partitions: p))
            specs.append(TopicSpec(name: t.requested(step, priority: .vip), partitions: p))
            specs.append(TopicSpec(name: t.deadLetter(step), partitions: p))
            let policy = configuration[step]
            for tier in 0..<policy.retryTiers {
                specs.append(TopicSpec(name: t.retry(step, tier: tier + 1), partitions: p, deliveryDelayMilliseconds: Int64((policy.tierDelaySeconds(tier + 1) * 1000).rounded())))
            }
        }
        for tier in 0..<configuration.compensation.retryTiers {
            specs.append(TopicSpec(name: t.retry(nil, tier: tier + 1), partitions: p, deliveryDelayMilliseconds: Int64((configuration.compensation.tierDelaySeconds(tier + 1) * 1000).rounded())))
        }
        return specs
    }

    /// Creates the topics that are missing (with `partitions`, default the configuration's)
    /// and adopts the ones that exist, whatever their partition count: on Kafka that count is
    /// the operator's decision (topics made by hand, or auto-created by the cluster). Fails
    /// only on what cannot work: an embedded retry tier that holds records back for another
    /// delay than the configuration's (on Kafka the workers take delays from the
    /// configuration, so any topic works).
    public static func create(_ configuration: SagaConfiguration, on broker: any MessageBroker, partitions: Int? = nil, logger: Logger? = nil) async throws {
        var existing = Dictionary(uniqueKeysWithValues: try await broker.listTopics().map { ($0.name, $0) })
        let embedded = broker as? EmbeddedBroker
        for var spec in specs(configuration) {
            if let partitions { spec.partitions = partitions }
            if existing[spec.name] == nil {
                do {
                    try await broker.createTopic(spec)
                    continue
                } catch let error as BrokerError where error.code == .topicExists {
                    // Made meanwhile by someone else (another dispatcher, the cluster's auto-creation).
                    existing[spec.name] = try await broker.describeTopic(spec.name)
                }
            }
            guard let topic = existing[spec.name] else { continue }
            if let embedded, topic.spec.deliveryDelayMilliseconds != spec.deliveryDelayMilliseconds {
                throw BrokerError(.invalidConfiguration, "topic \(spec.name) on the embedded broker in \(embedded.configuration.dataDirectory) holds records back \(topic.spec.deliveryDelayMilliseconds) ms, but the configuration's retry tier wants \(spec.deliveryDelayMilliseconds) ms; run with the configuration this data directory was made with, or start from a fresh --data-dir")
            }
            if topic.partitions.count != spec.partitions {
                logger?.notice("adopting an existing topic with its own partition count", metadata: [
                    "kafka.topic": "\(spec.name)", "kafka.partitions": "\(topic.partitions.count)", "kafka.configured_partitions": "\(spec.partitions)",
                ])
            }
        }
    }
}
