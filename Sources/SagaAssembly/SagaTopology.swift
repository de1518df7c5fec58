import Broker
import SagaDomain

/// Every topic the saga uses, with its partitions and, for retry tiers, its delivery delay.
public enum SagaTopology {
    public static func specs(_ configuration: SagaConfiguration) -> [TopicSpec] {
        let t = configuration.topics
        let p = configuration.partitions
        var specs = [t.orders, t.rejected, t.completed, t.compensated, t.manualReview, t.compensation, t.deadLetter(nil)].map { TopicSpec(name: $0, partitions: p) }
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

    /// Creates what is missing; existing topics are left as they are.
    public static func create(_ configuration: SagaConfiguration, on broker: any MessageBroker) async throws {
        let existing = Dictionary(uniqueKeysWithValues: try await broker.listTopics().map { ($0.name, $0) })
        for spec in specs(configuration) {
            if let topic = existing[spec.name] {
                if topic.spec.deliveryDelayMilliseconds != spec.deliveryDelayMilliseconds || topic.partitions.count != spec.partitions {
                    throw BrokerError(.invalidConfiguration, "topic \(spec.name) exists with \(topic.partitions.count) partitions and a \(topic.spec.deliveryDelayMilliseconds) ms delay, but the configuration wants \(spec.partitions) and \(spec.deliveryDelayMilliseconds) ms; use a fresh --data-dir or the configuration the data was made with")
                }
                continue
            }
            try await broker.createTopic(spec)
        }
    }
}
