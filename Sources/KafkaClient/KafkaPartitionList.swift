import CRdKafka
import Messaging

/// Turns librdkafka's topic-partition lists into Swift values and back.
enum KafkaPartitionList {
    static func make(_ entries: [(TopicPartition, Int64)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(entries.count, 1)))!
        for (tp, offset) in entries {
            rd_kafka_topic_partition_list_add(list, tp.topic, Int32(tp.partition)).pointee.offset = offset
        }
        return list
    }

    static func entries(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
        (0..<Int(list.pointee.cnt)).map { i in
            let element = list.pointee.elems[i]
            return (TopicPartition(String(cString: element.topic), Int(element.partition)), element.offset, element.err)
        }
    }
}
