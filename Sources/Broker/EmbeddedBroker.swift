import Foundation
import FulfillmentMetrics
import Logging
import Messaging
import Synchronization

/// The embedded, disk-persistent broker: Kafka's storage model (partitioned logs of v2
/// record batches in segment files) and Kafka's consumer-group semantics, in-process.
public final class EmbeddedBroker: MessageBroker {
    /// How the broker stores and acknowledges. Defaulted fields follow Kafka where it has one.
    public struct Configuration: Sendable {
        public var dataDirectory: String
        public var fsync: FsyncPolicy = .batch
        /// A segment rolls once it holds this many bytes.
        public var segmentBytes: Int64 = 128 << 20
        /// Open for inspection only: no lock taken, nothing written or truncated.
        public var readOnly = false
        /// Largest batch a single produce may append to one partition.
        public var maxBatchBytes = 16 << 20
        /// Under `fsync batch`: how long the group-commit thread pauses after a round before
        /// starting the next, gathering more appends into it. Zero (the default) syncs as soon
        /// as anything is pending; `fulfillment broker` uses 2 ms, which under a steady stream of
        /// produce requests halves the fsyncs for at most 2 ms more acknowledgement latency.
        public var groupCommitSpacing: Duration = .zero
        /// How often retention runs in the background (`nil`: only when segments roll).
        public var retentionCheckInterval: Duration? = .seconds(60)

        public init(dataDirectory: String) {
            self.dataDirectory = dataDirectory
        }
    }

    struct Topic {
        var spec: TopicSpec
        var partitions: [PartitionLog]
    }

    struct Group {
        var state: ConsumerGroupState
        /// Members parked in a long poll, woken when the group's ownership changes.
        var waiters: [String: Waiter] = [:]
    }

    struct Registry {
        var topics: [String: Topic] = [:]
        var groups: [String: Group] = [:]
        var closed = false
    }

    public let configuration: Configuration
    let logger: Logger
    /// Appends per topic, fsync rounds.
    let metrics: BrokerMetrics
    let offsets: OffsetStore
    private let lock: DataDirectoryLock?
    let syncScheduler: SyncScheduler?
    let registry: Mutex<Registry>
    private let retentionTask: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let memberCounter = Atomic<Int>(0)

    /// Opens (creating if needed) a data directory: takes its lock, recovers every partition.
    public init(configuration: Configuration, metrics: BrokerMetrics = .disabled, logger: Logger) throws {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        let directory = configuration.dataDirectory
        if configuration.readOnly {
            guard FileSystem.isDirectory(directory) else {
                throw BrokerError(.io, "data directory \(directory) does not exist; start `fulfillment run` (or pass --data-dir) first")
            }
            lock = nil
        } else {
            try FileSystem.createDirectory(directory)
            lock = try DataDirectoryLock(directory: directory)
        }
        offsets = try OffsetStore(path: directory + "/consumer-offsets.log", readOnly: configuration.readOnly)
        switch configuration.fsync {
        case .batch:
            syncScheduler = SyncScheduler(intervalMilliseconds: nil, directory: directory, roundSpacing: configuration.groupCommitSpacing, onRound: metrics.recordFsync)
        case .interval(let ms): syncScheduler = SyncScheduler(intervalMilliseconds: ms, directory: directory, onRound: metrics.recordFsync)
        case .always, .never: syncScheduler = nil
        }
        var registry = Registry()
        for spec in try Self.loadTopicSpecs(directory: directory) {
            registry.topics[spec.name] = Topic(spec: spec, partitions: try (0..<spec.partitions).map { p throws in
                try Self.openPartition(spec: spec, partition: p, configuration: configuration, logger: logger)
            })
        }
        self.registry = Mutex(registry)
        if !configuration.readOnly {
            // Under `fsync interval` or `never` a commit can outlive records it passed: a
            // crash cuts a partition's unsynced tail while the commit is in the offsets log.
            // The group would then skip whatever is written at those offsets after the
            // restart; it resumes at the recovered end instead.
            var ends: [TopicPartition: Int64] = [:]
            for (name, topic) in registry.topics {
                for (partition, log) in topic.partitions.enumerated() { ends[TopicPartition(name, partition)] = log.offsets.end }
            }
            try offsets.reconcile(withEnds: ends)
        }
        if let interval = configuration.retentionCheckInterval, !configuration.readOnly {
            retentionTask.withLock {
                $0 = Task { [weak self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        self?.enforceRetention()
                    }
                }
            }
        }
    }

    public convenience init(dataDirectory: String, fsync: FsyncPolicy = .batch, logger: Logger) throws {
        var configuration = Configuration(dataDirectory: dataDirectory)
        configuration.fsync = fsync
        try self.init(configuration: configuration, logger: logger)
    }

    /// Syncs what is pending and stops background work. The lock goes with the object.
    public func shutdown() {
        let alreadyClosed = registry.withLock { registry in
            defer { registry.closed = true }
            return registry.closed
        }
        guard !alreadyClosed else { return }
        retentionTask.withLock { $0?.cancel() }
        syncScheduler?.shutdown()
        if !configuration.readOnly {
            for log in allPartitions() { try? log.sync() }
            try? offsets.sync()
        }
        let waiters = registry.withLock { $0.groups.values.flatMap { $0.waiters.values } }
        for waiter in waiters { waiter.signal() }
    }

    deinit { shutdown() }

    private static func openPartition(spec: TopicSpec, partition: Int, configuration: Configuration, logger: Logger) throws -> PartitionLog {
        let tp = TopicPartition(spec.name, partition)
        return try PartitionLog.open(
            topicPartition: tp, directory: configuration.dataDirectory + "/" + tp.description,
            configuration: .init(
                segmentBytes: configuration.segmentBytes, retentionBytes: spec.retentionBytes,
                retentionMilliseconds: spec.retentionMilliseconds, visibleOnAppend: !configuration.fsync.acknowledgesDurably,
                readOnly: configuration.readOnly),
            logger: logger)
    }

    static func topicsFile(_ directory: String) -> String { directory + "/topics.json" }

    private static func loadTopicSpecs(directory: String) throws -> [TopicSpec] {
        let path = topicsFile(directory)
        guard FileSystem.exists(path) else { return [] }
        do {
            return try JSONDecoder().decode([TopicSpec].self, from: Data(try FileSystem.readFile(path)))
        } catch {
            throw BrokerError(.io, "cannot read \(path): \(error). The file lists the topics; restore it from a backup or remove the data directory")
        }
    }

    func checkOpen(_ registry: Registry) throws {
        if registry.closed { throw BrokerError(.closed, "the broker is shut down") }
    }

    private func allPartitions() -> [PartitionLog] {
        registry.withLock { $0.topics.values.flatMap(\.partitions) }
    }

    func partitionLog(_ topic: String, _ partition: Int) throws -> PartitionLog {
        try registry.withLock { (registry) in
            guard let entry = registry.topics[topic] else { throw BrokerError(.unknownTopic, "topic '\(topic)' does not exist") }
            guard partition >= 0, partition < entry.partitions.count else {
                throw BrokerError(.invalidPartition, "topic '\(topic)' has no partition \(partition) (it has \(entry.partitions.count))")
            }
            return entry.partitions[partition]
        }
    }

    func topicEntry(_ name: String) throws -> Topic {
        try registry.withLock { (registry) in
            guard let entry = registry.topics[name] else { throw BrokerError(.unknownTopic, "topic '\(name)' does not exist") }
            return entry
        }
    }

    // MARK: Topics

    public func createTopic(_ spec: TopicSpec) async throws {
        try TopicSpec.validateName(spec.name)
        guard spec.partitions > 0, spec.partitions <= 10_000 else {
            throw BrokerError(.invalidConfiguration, "topic '\(spec.name)' needs 1-10000 partitions, not \(spec.partitions)")
        }
        guard !configuration.readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        try registry.withLock { (registry) throws in
            try checkOpen(registry)
            if let existing = registry.topics[spec.name] {
                guard existing.spec.partitions == spec.partitions else {
                    throw BrokerError(.topicExists, "topic '\(spec.name)' exists with \(existing.spec.partitions) partitions, not \(spec.partitions)")
                }
                return
            }
            let partitions = try (0..<spec.partitions).map { p throws in
                // A directory of this name is what a deletion cut short by a crash left (the
                // topic is not listed): a new topic starts empty, not with the old records.
                let leftover = configuration.dataDirectory + "/" + TopicPartition(spec.name, p).description
                if FileSystem.isDirectory(leftover) {
                    for file in FileSystem.list(leftover) { FileSystem.remove(leftover + "/" + file) }
                    FileSystem.removeEmptyDirectory(leftover)
                }
                return try Self.openPartition(spec: spec, partition: p, configuration: configuration, logger: logger)
            }
            registry.topics[spec.name] = Topic(spec: spec, partitions: partitions)
            let specs = registry.topics.values.map(\.spec).sorted { $0.name < $1.name }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileSystem.writeAtomically(Array(try encoder.encode(specs)), to: Self.topicsFile(configuration.dataDirectory))
        }
    }

    public func listTopics() async throws -> [TopicDescription] {
        let topics = registry.withLock { Array($0.topics.values) }
        return topics.map(describe).sorted { $0.name < $1.name }
    }

    public func describeTopic(_ name: String) async throws -> TopicDescription {
        describe(try topicEntry(name))
    }

    private func describe(_ topic: Topic) -> TopicDescription {
        TopicDescription(spec: topic.spec, partitions: topic.partitions.enumerated().map { p, log in
            let (begin, end) = log.offsets
            return PartitionDescription(partition: p, beginOffset: begin, endOffset: end)
        })
    }

    // MARK: Produce

    public func produce(_ records: [ProducerRecord]) async throws -> [RecordMetadata] {
        let (metadata, durability) = try append(records)
        try await durability.wait()
        return metadata
    }

    /// Appends at once, in call order, and returns what to wait on before the records count
    /// as acknowledged: a bulk loader appends its next batch while the previous one syncs.
    public func append(_ records: [ProducerRecord]) throws -> (metadata: [RecordMetadata], durability: PendingDurability) {
        guard !records.isEmpty else { return ([], .none) }
        guard !configuration.readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        let now = UnixClock.nowMillis()
        // Group records per partition, keeping input order inside each group.
        var groups: [TopicPartition: [Int]] = [:]
        var counts: [String: Int] = [:]
        var logs: [TopicPartition: PartitionLog] = [:]
        for (i, record) in records.enumerated() {
            let count: Int
            if let known = counts[record.topic] {
                count = known
            } else {
                count = try topicEntry(record.topic).spec.partitions
                counts[record.topic] = count
            }
            let partition = record.partition ?? Murmur2Partitioner.partition(forKey: record.key, partitionCount: count)
            guard partition >= 0, partition < count else {
                throw BrokerError(.invalidPartition, "topic '\(record.topic)' has no partition \(partition) (it has \(count))")
            }
            groups[TopicPartition(record.topic, partition), default: []].append(i)
        }
        var metadata = [RecordMetadata?](repeating: nil, count: records.count)
        var durability = PendingDurability.none
        for (tp, indexes) in groups {
            let log: PartitionLog
            if let known = logs[tp] { log = known } else {
                log = try partitionLog(tp.topic, tp.partition)
                logs[tp] = log
            }
            var batch = RecordBatchCodec.encode(indexes.lazy.map { records[$0] }, defaultTimestamp: now)
            guard batch.count <= configuration.maxBatchBytes else {
                throw BrokerError(.recordTooLarge, "a batch of \(batch.count) bytes for \(tp) exceeds the \(configuration.maxBatchBytes)-byte limit")
            }
            let base = try log.append(batch: &batch)
            metrics.appendedRecords[tp.topic].increment(by: indexes.count)
            metrics.appendedBytes[tp.topic].increment(by: batch.count)
            for (delta, index) in indexes.enumerated() {
                metadata[index] = RecordMetadata(topic: tp.topic, partition: tp.partition, offset: base + Int64(delta), timestamp: records[index].timestamp ?? now)
            }
            // Tickets grow: waiting for the last one covers every partition appended before it.
            durability = try pendingDurability(log, upTo: base + Int64(indexes.count))
        }
        return (metadata.map { $0! }, durability)
    }

    // MARK: Read without a group

    public func read(topic: String, partition: Int, from offset: Int64, maxRecords: Int) async throws -> [ConsumerRecord] {
        let log = try partitionLog(topic, partition)
        var records: [ConsumerRecord] = []
        var position = max(offset, log.offsets.begin)
        while records.count < maxRecords {
            let result = try log.read(from: position, maxBytes: 1 << 20)
            if result.bytes.isEmpty { break }
            let before = records.count
            position = try decode(result.bytes, topic: topic, partition: partition, from: position, into: &records, limit: maxRecords, delay: 0, now: 0).nextOffset
            if records.count == before && position >= result.highWatermark { break }
        }
        return records
    }

    /// Decodes whole batches into records from `offset` on; returns the next offset to read and,
    /// for delayed topics, when the first record not yet due becomes due.
    func decode(
        _ bytes: [UInt8], topic: String, partition: Int, from offset: Int64, into records: inout [ConsumerRecord],
        limit: Int, delay: Int64, now: Int64
    ) throws -> (nextOffset: Int64, nextDue: Int64?) {
        var next = offset
        var nextDue: Int64?
        try bytes.withUnsafeBytes { (raw) in
            var position = 0
            while position < raw.count, records.count < limit {
                let batch = UnsafeRawBufferPointer(rebasing: raw[position...])
                let header = try RecordBatchHeader.parse(batch)
                if header.lastOffset < next {
                    position += header.totalSize
                    continue
                }
                if delay > 0, header.firstTimestamp + delay > now, header.baseOffset >= next {
                    nextDue = header.firstTimestamp + delay
                    return
                }
                let room = limit - records.count
                let before = records.count
                if header.recordCount <= room || header.isControl {
                    let complete = try RecordBatchCodec.decodeRecords(
                        batch: batch, header: header, topic: topic, partition: partition, fromOffset: next,
                        into: &records, dueCutoff: delay > 0 ? now : nil, deliveryDelay: delay, nextDue: &nextDue)
                    if !complete {
                        // `records` may end with another partition's records: only this
                        // batch's, appended just now, move this partition's position.
                        if records.count > before, let last = records.last { next = max(next, last.offset + 1) }
                        return
                    }
                    next = header.lastOffset + 1
                } else {
                    // Only part of this batch fits: decode it and keep the first `room` records.
                    var part: [ConsumerRecord] = []
                    try RecordBatchCodec.decodeRecords(
                        batch: batch, header: header, topic: topic, partition: partition, fromOffset: next,
                        into: &part, dueCutoff: delay > 0 ? now : nil, deliveryDelay: delay, nextDue: &nextDue)
                    let taken = part.prefix(room)
                    records.append(contentsOf: taken)
                    if let last = taken.last { next = last.offset + 1 }
                    return
                }
                position += header.totalSize
            }
        }
        return (next, nextDue)
    }

    // MARK: Groups

    public func makeConsumer(group: String, topics: [String], configuration: ConsumerConfiguration) async throws -> any GroupConsumer {
        try await makeEmbeddedConsumer(group: group, topics: topics, configuration: configuration)
    }

    public func makeEmbeddedConsumer(group: String, topics: [String], configuration: ConsumerConfiguration) async throws -> EmbeddedGroupConsumer {
        guard !group.isEmpty else { throw BrokerError(.invalidConfiguration, "a consumer group needs a name") }
        let memberID = "\(configuration.clientID)-\(memberCounter.add(1, ordering: .relaxed).newValue)-\(UInt32.random(in: 0...UInt32.max))"
        try groupJoin(group: group, memberID: memberID, topics: topics, sessionTimeout: configuration.sessionTimeout)
        return EmbeddedGroupConsumer(broker: self, group: group, memberID: memberID, topics: topics, configuration: configuration)
    }

    /// Adds a member to a group (creating the group), or takes back one the group expelled.
    func groupJoin(group: String, memberID: String, topics: [String], sessionTimeout: Duration) throws {
        let wake = try registry.withLock { (registry) -> [Waiter] in
            try checkOpen(registry)
            var entry = registry.groups[group] ?? Group(state: ConsumerGroupState(sessionTimeout: sessionTimeout))
            entry.state.join(memberID: memberID, topics: Set(topics), now: .now)
            let waiters = Array(entry.waiters.values)
            registry.groups[group] = entry
            return waiters
        }
        for waiter in wake { waiter.signal() }
    }

    func groupSync(group: String, memberID: String) throws -> ConsumerGroupState.SyncResult {
        try registry.withLock { (registry) in
            try checkOpen(registry)
            guard registry.groups[group] != nil else { throw BrokerError(.unknownMember, "group \(group) has no member \(memberID)") }
            var counts: [String: Int] = [:]
            for topic in registry.groups[group]!.state.members[memberID]?.topics ?? [] {
                counts[topic] = registry.topics[topic]?.partitions.count ?? 0
            }
            // Changed in place: a copy of the entry would make every poll copy the group's
            // tables (copy on write).
            let before = registry.groups[group]!.state.generation
            let result = try registry.groups[group]!.state.sync(memberID: memberID, now: .now, partitionCounts: counts)
            if result.generation != before {
                for waiter in registry.groups[group]!.waiters.values { waiter.signal() }
            }
            return result
        }
    }

    func groupRelease(group: String, memberID: String, partitions: Set<TopicPartition>) {
        let wake: [Waiter] = registry.withLock { registry in
            guard var entry = registry.groups[group] else { return [] }
            entry.state.release(memberID: memberID, partitions: partitions)
            registry.groups[group] = entry
            return Array(entry.waiters.values)
        }
        for waiter in wake { waiter.signal() }
    }

    func groupLeave(group: String, memberID: String) {
        let wake: [Waiter] = registry.withLock { registry in
            guard var entry = registry.groups[group] else { return [] }
            entry.state.leave(memberID: memberID)
            entry.waiters[memberID] = nil
            registry.groups[group] = entry
            return Array(entry.waiters.values)
        }
        for waiter in wake { waiter.signal() }
    }

    func setGroupWaiter(group: String, memberID: String, _ waiter: Waiter?) {
        registry.withLock { registry in
            registry.groups[group]?.waiters[memberID] = waiter
        }
    }

    func groupCommit(group: String, memberID: String, offsets: [TopicPartition: Int64]) async throws {
        try await commitOffsets(group: group, offsets) { registry in
            guard let entry = registry.groups[group], entry.state.members[memberID] != nil else {
                throw BrokerError(.unknownMember, "member \(memberID) is no longer in group \(group) (it stopped polling past the session timeout)")
            }
            for tp in offsets.keys where !entry.state.owns(memberID: memberID, tp) {
                throw BrokerError(.notPartitionOwner, "member \(memberID) of group \(group) does not own \(tp) any more; its records will be redelivered to the new owner")
            }
        }
    }

    func partitionLogForConsumer(_ tp: TopicPartition) throws -> (PartitionLog, Int64) {
        try registry.withLock { (registry) in
            guard let entry = registry.topics[tp.topic], tp.partition < entry.partitions.count else {
                throw BrokerError(.unknownTopic, "topic '\(tp.topic)' does not exist")
            }
            return (entry.partitions[tp.partition], entry.spec.deliveryDelayMilliseconds)
        }
    }

    public func lag(group: String, topics wanted: [String]) async throws -> [PartitionLag] {
        let committed = offsets.committed(group: group)
        // Every partition of every topic asked for, or the group reads now or has committed to.
        var partitions: Set<TopicPartition> = []
        registry.withLock { registry in
            var topics = Set(committed.keys.map(\.topic)).union(wanted)
            for member in registry.groups[group].map({ Array($0.state.members.values) }) ?? [] { topics.formUnion(member.topics) }
            for topic in topics {
                for p in 0..<(registry.topics[topic]?.partitions.count ?? 0) { partitions.insert(TopicPartition(topic, p)) }
            }
        }
        var result: [PartitionLag] = []
        for tp in partitions.sorted() {
            guard let log = try? partitionLog(tp.topic, tp.partition) else { continue }
            let (begin, end) = log.offsets
            result.append(PartitionLag(group: group, topic: tp.topic, partition: tp.partition, committedOffset: committed[tp], beginOffset: begin, endOffset: end))
        }
        return result
    }

    public func listGroups() async throws -> [String] {
        let live = registry.withLock { Set($0.groups.keys) }
        return live.union(offsets.groups).sorted()
    }

    /// Committed offset of a group on one partition (`nil` if never committed).
    public func committedOffset(group: String, _ tp: TopicPartition) -> Int64? {
        offsets.committed(group: group, tp)
    }

    /// Runs retention on every partition now; returns how many segments were deleted.
    @discardableResult
    public func enforceRetention(now: Int64 = UnixClock.nowMillis()) -> Int {
        allPartitions().reduce(0) { $0 + $1.enforceRetention(now: now) }
    }

    /// Segment files of a partition, for tests and inspection.
    public func segmentCount(_ tp: TopicPartition) throws -> Int {
        try partitionLog(tp.topic, tp.partition).segmentCount
    }
}
