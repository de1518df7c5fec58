import CRdKafka
import Messaging

/// librdkafka's errors as `BrokerError`s. Codes the workers act on map to the abstraction's
/// own (a rebalanced-away partition is `notPartitionOwner` on both backends); the rest keep
/// librdkafka's name with its retriable/fatal nature.
extension BrokerError {
    static func kafka(_ code: rd_kafka_resp_err_t, _ context: String) -> BrokerError {
        let detail = String(cString: rd_kafka_err2str(code))
        return BrokerError(Code.kafka(code), "\(context): \(detail)")
    }

    /// Takes ownership of `error` (an `rd_kafka_error_t`) and destroys it.
    static func kafka(consuming error: OpaquePointer, _ context: String) -> BrokerError {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        let base = Code.kafka(code)
        let merged = Code(
            name: base.name, isRetriable: base.isRetriable || rd_kafka_error_is_retriable(error) != 0,
            isFatal: base.isFatal || rd_kafka_error_is_fatal(error) != 0)
        return BrokerError(merged, "\(context): \(String(cString: rd_kafka_error_string(error)))")
    }
}

extension BrokerError.Code {
    /// Kafka errors a later attempt can get past: leadership moves, timeouts, transport drops,
    /// coordinators loading, full local queues.
    static let retriableKafkaErrors: Set<rd_kafka_resp_err_t> = [
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__WAIT_COORD,
        RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR__INTR,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND, RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE,
    ]

    static func kafka(_ code: rd_kafka_resp_err_t) -> BrokerError.Code {
        switch code {
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC: return .unknownTopic
        case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: return .topicExists
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION: return .invalidTopic
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION: return .invalidPartition
        case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE: return .offsetOutOfRange
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: return .recordTooLarge
        case RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR__BAD_MSG: return .corruptRecord
        case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION, RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID,
            RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST, RD_KAFKA_RESP_ERR__STATE:
            return .notPartitionOwner
        case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE, RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION: return .unsupported
        case RD_KAFKA_RESP_ERR__INVALID_ARG: return .invalidConfiguration
        case RD_KAFKA_RESP_ERR__DESTROY: return .closed
        default:
            return BrokerError.Code(
                name: "kafka_" + String(cString: rd_kafka_err2name(code)).lowercased(),
                isRetriable: retriableKafkaErrors.contains(code),
                isFatal: code == RD_KAFKA_RESP_ERR__FATAL)
        }
    }
}
