import CRdKafka
import Messaging

/// librdkafka's built-in mock cluster: real Kafka protocol (produce, fetch, consumer groups,
/// idempotent producer) on loopback ports, in this process. Tests and `fulfillment kafka-mock`
/// use it where no Kafka cluster runs. It has no CreateTopics API: topics are made here.
public final class KafkaMockCluster: @unchecked Sendable {
    // Safe: immutable after `init`; librdkafka's mock-cluster calls lock the cluster themselves.
    private let handle: OpaquePointer
    private let cluster: OpaquePointer
    /// `host:port,...` of the mock brokers, for clients in this or other processes.
    public let bootstrapServers: String
    public let brokerCount: Int

    public init(brokers: Int = 3) throws {
        let conf = rd_kafka_conf_new()!
        // The hosting handle never connects anywhere; keep it from warning about that.
        try KafkaConfiguration.set(conf, "log_level", "3")
        var message = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &message, message.count) else {
            rd_kafka_conf_destroy(conf)
            throw BrokerError(.invalidConfiguration, "cannot host a mock cluster: \(KafkaConfiguration.text(message))")
        }
        guard let cluster = rd_kafka_mock_cluster_new(handle, Int32(brokers)) else {
            rd_kafka_destroy(handle)
            throw BrokerError(.io, "librdkafka could not start a mock cluster")
        }
        self.handle = handle
        self.cluster = cluster
        brokerCount = brokers
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(handle)
    }

    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        let error = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(min(replicationFactor, brokerCount)))
        if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw BrokerError.kafka(error, "creating mock topic \(name)") }
    }

    /// Takes a broker (1-based id) off the network or brings it back.
    public func setBroker(_ id: Int, up: Bool) throws {
        let error = up ? rd_kafka_mock_broker_set_up(cluster, Int32(id)) : rd_kafka_mock_broker_set_down(cluster, Int32(id))
        if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw BrokerError.kafka(error, "setting mock broker \(id) \(up ? "up" : "down")") }
    }

    /// The next requests of `apiKey` (Kafka's numbering: 0 Produce, 1 Fetch, 8 OffsetCommit,
    /// ...) fail with these Kafka error codes, in order.
    public func failNextRequests(apiKey: Int16, errors: [Int32]) {
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, codes.count, &codes)
    }
}
