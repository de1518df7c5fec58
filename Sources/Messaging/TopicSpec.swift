/// How a topic is created. Defaults follow Kafka's broker defaults where it has one.
public struct TopicSpec: Codable, Hashable, Sendable {
    public var name: String
    public var partitions: Int
    /// Records become visible to consumers only once `timestamp + deliveryDelay` has passed.
    /// Retry tiers use this so a waiting retry never holds up anything else.
    public var deliveryDelayMilliseconds: Int64
    /// Oldest closed segments are deleted while a partition holds more than this (`nil`: no limit).
    public var retentionBytes: Int64?
    /// Closed segments whose newest record is older than this are deleted (`nil`: keep forever).
    public var retentionMilliseconds: Int64?

    public init(
        name: String,
        partitions: Int,
        deliveryDelayMilliseconds: Int64 = 0,
        retentionBytes: Int64? = nil,
        retentionMilliseconds: Int64? = nil
    ) {
        self.name = name
        self.partitions = partitions
        self.deliveryDelayMilliseconds = deliveryDelayMilliseconds
        self.retentionBytes = retentionBytes
        self.retentionMilliseconds = retentionMilliseconds
    }

    /// Kafka's rule: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
    public static func validateName(_ name: String) throws {
        let legal = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x2E || c == 0x5F || c == 0x2D
        }
        guard !name.isEmpty, name.utf8.count <= 249, legal, name != ".", name != ".." else {
            throw BrokerError(.invalidTopic, "invalid topic name '\(name)': use 1-249 characters of letters, digits, '.', '_' and '-'")
        }
    }
}

/// One partition as `describe` reports it.
public struct PartitionDescription: Hashable, Sendable, Codable {
    public var partition: Int
    /// The first offset still stored (older records were removed by retention).
    public var beginOffset: Int64
    /// The offset the next record will get; records below it are readable.
    public var endOffset: Int64

    public init(partition: Int, beginOffset: Int64, endOffset: Int64) {
        self.partition = partition
        self.beginOffset = beginOffset
        self.endOffset = endOffset
    }
}

/// A topic as `describe` reports it.
public struct TopicDescription: Hashable, Sendable, Codable {
    public var spec: TopicSpec
    public var partitions: [PartitionDescription]
    public var name: String { spec.name }

    public init(spec: TopicSpec, partitions: [PartitionDescription]) {
        self.spec = spec
        self.partitions = partitions
    }
}

/// How far one group is behind on one partition.
public struct PartitionLag: Hashable, Sendable, Codable {
    public var group: String
    public var topic: String
    public var partition: Int
    /// `nil` when the group never committed on this partition.
    public var committedOffset: Int64?
    /// The partition's first offset still held (where a member without a commit starts).
    public var beginOffset: Int64
    public var endOffset: Int64
    /// Records from the commit (or, without one, from `beginOffset`) to the end.
    public var lag: Int64

    public init(group: String, topic: String, partition: Int, committedOffset: Int64?, beginOffset: Int64, endOffset: Int64) {
        self.group = group
        self.topic = topic
        self.partition = partition
        self.committedOffset = committedOffset
        self.beginOffset = beginOffset
        self.endOffset = endOffset
        self.lag = max(0, endOffset - max(committedOffset ?? beginOffset, beginOffset))
    }
}
