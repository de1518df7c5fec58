/// A record header as Kafka carries it: a string key and opaque bytes.
public struct RecordHeader: Hashable, Sendable {
    public var key: String
    public var value: [UInt8]

    public init(_ key: String, _ value: [UInt8]) {
        self.key = key
        self.value = value
    }

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = Array(value.utf8)
    }

    /// The value read as UTF-8 text (headers in this product are always text).
    public var stringValue: String { String(decoding: value, as: UTF8.self) }
}

/// A record to be produced. Without an explicit partition, the key picks the partition with
/// Kafka's murmur2 partitioner; a record without a key goes to a random partition.
public struct ProducerRecord: Sendable {
    public var topic: String
    public var partition: Int?
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [RecordHeader]
    /// Milliseconds since the Unix epoch; `nil` means "now" at append time.
    public var timestamp: Int64?

    public init(
        topic: String,
        partition: Int? = nil,
        key: [UInt8]?,
        value: [UInt8],
        headers: [RecordHeader] = [],
        timestamp: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    public init(topic: String, key: String?, value: String, headers: [RecordHeader] = []) {
        self.init(topic: topic, key: key.map { Array($0.utf8) }, value: Array(value.utf8), headers: headers)
    }
}

/// A record as read back from a topic.
public struct ConsumerRecord: Sendable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    /// Milliseconds since the Unix epoch.
    public var timestamp: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [RecordHeader]

    public init(
        topic: String, partition: Int, offset: Int64, timestamp: Int64,
        key: [UInt8]?, value: [UInt8], headers: [RecordHeader]
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }

    /// The first header with this key, as text.
    public func header(_ key: String) -> String? {
        headers.first(where: { $0.key == key })?.stringValue
    }

    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
    public var valueString: String { String(decoding: value, as: UTF8.self) }
}

/// Where an acknowledged record was written.
public struct RecordMetadata: Hashable, Sendable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    public var timestamp: Int64

    public init(topic: String, partition: Int, offset: Int64, timestamp: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
    }
}
