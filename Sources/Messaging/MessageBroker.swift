/// The messaging abstraction the workers and the dispatcher talk to. The embedded log broker
/// implements it on one machine; a librdkafka-backed client implements it against a Kafka
/// cluster. Callers never learn which one they hold.
public protocol MessageBroker: Sendable {
    /// Creates a topic; creating one that exists with the same partition count is a no-op.
    func createTopic(_ spec: TopicSpec) async throws
    func listTopics() async throws -> [TopicDescription]
    /// Partitions with their begin and end offsets.
    func describeTopic(_ name: String) async throws -> TopicDescription
    /// Appends records and returns once they are acknowledged under the broker's durability
    /// policy, with the offset each got, in input order.
    func produce(_ records: [ProducerRecord]) async throws -> [RecordMetadata]
    /// Joins `group` as a new member subscribed to `topics`.
    func makeConsumer(group: String, topics: [String], configuration: ConsumerConfiguration) async throws -> any GroupConsumer
    /// Reads a partition from an offset without a group (inspection, dead-letter topics).
    func read(topic: String, partition: Int, from offset: Int64, maxRecords: Int) async throws -> [ConsumerRecord]
    /// Committed offset and lag of `group` on every partition of `topics` (those that exist)
    /// and of every topic the group has committed to or reads now. A partition without a
    /// commit lags by every record it holds, from its beginning: where a new member starts.
    func lag(group: String, topics: [String]) async throws -> [PartitionLag]
    /// The groups known to the broker.
    func listGroups() async throws -> [String]
    /// Releases the broker (files and locks, or connections after flushing what is queued).
    func shutdown()
}

extension MessageBroker {
    /// Lag on the topics the broker knows `group` by: its commits and its live members'.
    public func lag(group: String) async throws -> [PartitionLag] {
        try await lag(group: group, topics: [])
    }

    public func produce(_ record: ProducerRecord) async throws -> RecordMetadata {
        try await produce([record])[0]
    }
}

/// Where a member starts on a partition its group never committed to.
public enum OffsetResetPolicy: String, Sendable, Codable {
    case earliest
    case latest
}

/// Tunables of one group member. Defaults mirror Kafka's where it has them.
public struct ConsumerConfiguration: Sendable {
    /// A member that does not poll for this long is expelled and its partitions move.
    public var sessionTimeout: Duration = .seconds(10)
    public var autoOffsetReset: OffsetResetPolicy = .earliest
    /// Upper bound of bytes read from one partition in one poll.
    public var maxPartitionFetchBytes: Int = 1 << 20
    /// Identifies the member in logs and lag output.
    public var clientID: String = "consumer"
    /// Called inside `poll` with partitions about to move to another member, before they are
    /// released, so the member can commit what it finished.
    public var onRevoke: (@Sendable (Set<TopicPartition>) async -> Void)?
    /// For a member that keeps its own record of what it consumed, in the transaction with
    /// its effects (the saga tracker's store): where to start reading partitions just granted,
    /// asked inside `poll` when they are granted. A partition the answer names starts there
    /// instead of at the group's committed offset, so what the member's own record lacks is
    /// read again even when the group's commit went further (a store restored from a
    /// backup). Offset 0 or less is the log's start; a later offset that retention removed is
    /// the log's start on the embedded broker and follows `autoOffsetReset` on Kafka.
    /// Partitions it leaves out start as usual.
    public var startOffsets: (@Sendable (Set<TopicPartition>) async -> [TopicPartition: Int64])?

    public init() {}
}

/// One member of a consumer group. Not for concurrent use by several tasks.
public protocol GroupConsumer: Sendable {
    var memberID: String { get }
    /// Up to `maxRecords` records from the member's partitions, waiting up to `maxWait` when
    /// none is ready. Also where rebalances take effect.
    func poll(maxRecords: Int, maxWait: Duration) async throws -> [ConsumerRecord]
    /// Durably commits the next offsets to read; fails with `notPartitionOwner` for
    /// partitions the member no longer owns.
    func commit(_ offsets: [TopicPartition: Int64]) async throws
    func assignment() async -> Set<TopicPartition>
    func pause(_ partitions: Set<TopicPartition>) async
    func resume(_ partitions: Set<TopicPartition>) async
    /// Moves the read position of an owned partition.
    func seek(_ partition: TopicPartition, to offset: Int64) async throws
    /// Leaves the group; its partitions go to the remaining members.
    func close() async
}

extension GroupConsumer {
    /// Commits the offset after each record's (the next one to read), per partition.
    public func commit(records: some Sequence<ConsumerRecord>) async throws {
        var offsets: [TopicPartition: Int64] = [:]
        for record in records {
            let tp = record.topicPartition
            offsets[tp] = max(offsets[tp] ?? 0, record.offset + 1)
        }
        if !offsets.isEmpty { try await commit(offsets) }
    }
}
