import Messaging
import SagaDomain
import SagaRuntime

/// The saga's consumer groups and the topics each reads: what the services subscribe to
/// (`SagaNode`, the tracker, the compensation driver), and so what their lag is counted on.
///
/// A broker knows a group's topics only from its commits and its live members, so a group
/// whose workers are down, or never committed on some partition, would show no lag there
/// while its work piles up (librdkafka's committed offsets list only committed partitions).
/// Counted on every partition of these topics instead, a partition without a commit lags by
/// every record it holds: where a new member would start.
public enum SagaGroups {
    /// The intake's groups: `dispatcher` reads `orders`, `dispatcher.priority` the VIP intake.
    public static let intake = "dispatcher"
    public static let compensationDriver = "compensation-driver"
    public static let compensation = "compensation"
    /// The intake's lanes: each group with the one topic it reads.
    public static func intakeLanes(_ configuration: SagaConfiguration) -> [(group: String, topic: String)] {
        [(intake, configuration.topics.orders), (WorkerRuntimeConfiguration.priorityGroup(intake), configuration.topics.ordersPriority)]
    }

    /// A step worker's lanes: its request topic and retry tiers, and its VIP request topic.
    public static func stepLanes(_ step: SagaStep, _ configuration: SagaConfiguration) -> (standard: [String], priority: [String]) {
        let t = configuration.topics
        return ([t.requested(step)] + (0..<configuration[step].retryTiers).map { t.retry(step, tier: $0 + 1) }, [t.requested(step, priority: .vip)])
    }

    /// The compensation worker's topic and its retry tiers.
    public static func compensationTopics(_ configuration: SagaConfiguration) -> [String] {
        let t = configuration.topics
        return [t.compensation] + (0..<configuration.compensation.retryTiers).map { t.retry(nil, tier: $0 + 1) }
    }

    /// The dead-letter topics the compensation driver turns into compensations.
    public static func compensationDriverTopics(_ configuration: SagaConfiguration) -> [String] {
        let t = configuration.topics
        return t.stepDeadLetters + [t.deadLetter(nil)]
    }

    /// Every group of the saga with the topics it reads.
    public static func all(_ configuration: SagaConfiguration) -> [String: [String]] {
        var groups = [
            SagaTracker.group: SagaTracker.topics(configuration),
            compensationDriver: compensationDriverTopics(configuration),
            compensation: compensationTopics(configuration),
        ]
        for lane in intakeLanes(configuration) { groups[lane.group] = [lane.topic] }
        for step in SagaStep.allCases {
            let lanes = stepLanes(step, configuration)
            groups[step.rawValue] = lanes.standard
            groups[WorkerRuntimeConfiguration.priorityGroup(step.rawValue)] = lanes.priority
        }
        return groups
    }

    /// The lag of every group the broker knows and of every group of the saga (known to the
    /// broker or not): each saga group's on every partition of its topics.
    public static func lags(_ broker: any MessageBroker, _ configuration: SagaConfiguration) async throws -> [String: [PartitionLag]] {
        let saga = all(configuration)
        var known: [String]
        do {
            known = try await broker.listGroups()
        } catch let error as BrokerError where error.code == .unsupported {
            known = []  // librdkafka's mock cluster has no ListGroups
        }
        var lags: [String: [PartitionLag]] = [:]
        for group in Set(known).union(saga.keys).sorted() {
            lags[group] = try await broker.lag(group: group, topics: saga[group] ?? [])
        }
        return lags
    }
}
