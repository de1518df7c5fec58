/// One partition of one topic: the unit of ordering, ownership and offsets.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int

    public init(_ topic: String, _ partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        lhs.topic == rhs.topic ? lhs.partition < rhs.partition : lhs.topic < rhs.topic
    }

    /// Kafka's own spelling, also the name of the partition's folder on disk.
    public var description: String { "\(topic)-\(partition)" }
}
