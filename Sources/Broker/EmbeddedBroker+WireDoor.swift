import Foundation
import Messaging
import NIOCore

/// What the Kafka wire door needs beyond `MessageBroker`: batches appended and read as bytes
/// (stored exactly as a client sent them, served exactly as stored), group offsets committed
/// by a coordinator that checks membership itself, topic deletion, and a wait for new data.
extension EmbeddedBroker {
    /// Whole v2 batches of one partition from `offset` on (the first may start before it;
    /// clients skip what they did not ask for), never past the high watermark.
    public struct StoredBatches: Sendable {
        /// The batches as slices of what was read from disk, in order, not copied.
        public var parts: [ByteBuffer]
        public var highWatermark: Int64
        public var logStartOffset: Int64

        /// The batches in one array (a copy).
        public var bytes: [UInt8] { parts.joinedBytes() }
        /// Their bytes in all.
        public var count: Int { parts.byteCount }
    }

    /// An append not yet acknowledged: under `fsync batch` its records are acknowledged (and
    /// visible) once the sync round it joined has finished. Waiting is separate from appending
    /// so a connection can append its next request while the previous one syncs.
    public struct PendingDurability: Sendable {
        let scheduler: SyncScheduler?
        let ticket: UInt64

        public static let none = PendingDurability(scheduler: nil, ticket: 0)

        /// Returns once the append is durable under the broker's fsync policy.
        public func wait() async throws {
            guard let scheduler else { return }
            try await scheduler.waitDurable(ticket)
        }
    }

    /// Appends v2 batches as they are, patching only each base offset (outside the CRC), in
    /// the order given. Returns the base offset of the first, and what to wait on before
    /// acknowledging. The caller has checked each batch's framing and CRC.
    public func appendBatches(_ batches: [[UInt8]], topic: String, partition: Int) throws -> (baseOffset: Int64, durability: PendingDurability) {
        guard !configuration.readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        let log = try partitionLog(topic, partition)
        var first: Int64 = -1
        for var batch in batches {
            guard batch.count <= configuration.maxBatchBytes else {
                throw BrokerError(.recordTooLarge, "a batch of \(batch.count) bytes for \(topic)-\(partition) exceeds the \(configuration.maxBatchBytes)-byte limit")
            }
            let base = try log.append(batch: &batch)
            if first < 0 { first = base }
            metrics.appendedBytes[topic].increment(by: batch.count)
        }
        guard first >= 0 else { return (log.logEndOffset, .none) }
        metrics.appendedRecords[topic].increment(by: Int(log.logEndOffset - first))
        return (first, try pendingDurability(log, upTo: log.logEndOffset))
    }

    /// The fsync policy applied to what was just written to `target` (up to `mark`): synced
    /// now under `always`, a group-commit ticket to wait on under `batch`, a sync scheduled
    /// without waiting under `interval`, nothing under `never`.
    func pendingDurability(_ target: any Syncable, upTo mark: Int64) throws -> PendingDurability {
        switch configuration.fsync {
        case .always:
            let started = ContinuousClock.now
            try target.sync()
            metrics.recordFsync(.now - started)
            target.didSync(upTo: mark)
            return .none
        case .batch:
            return PendingDurability(scheduler: syncScheduler, ticket: syncScheduler!.register(target, mark: mark))
        case .interval:
            _ = syncScheduler!.register(target, mark: mark)
            return .none
        case .never:
            return .none
        }
    }

    public func readBatches(topic: String, partition: Int, from offset: Int64, maxBytes: Int) throws -> StoredBatches {
        let read = try partitionLog(topic, partition).readParts(from: offset, maxBytes: maxBytes)
        return StoredBatches(parts: read.parts, highWatermark: read.highWatermark, logStartOffset: read.logStartOffset)
    }

    /// Returns once any of `partitions` may have records past `offsets`, at `deadline`, or on
    /// cancellation. Never spins: parks on the partitions' one-shot waiters.
    public func waitForRecords(_ offsets: [TopicPartition: Int64], until deadline: ContinuousClock.Instant) async {
        let logs = offsets.compactMap { tp, offset in (try? partitionLog(tp.topic, tp.partition)).map { ($0, offset) } }
        guard !logs.isEmpty else {
            try? await Task.sleep(until: deadline, clock: .continuous)
            return
        }
        let waiter = Waiter()
        for (log, _) in logs { log.addWaiter(waiter) }
        defer { for (log, _) in logs { log.removeWaiter(waiter) } }
        // Look again after registering, so a record that became visible in between counts.
        if logs.contains(where: { $0.0.highWatermark > $0.1 }) { return }
        await waiter.wait(until: deadline)
    }

    /// Durably records a group's offsets. Membership and generation are the caller's to check
    /// (the wire door's group coordinator); in-process members go through their consumer.
    public func commitOffsets(group: String, _ offsets: [TopicPartition: Int64]) async throws {
        try await commitOffsets(group: group, offsets) { _ in }
    }

    /// `check` runs under the registry's lock together with the append, so what it verified
    /// (an in-process member still owns the partitions) still holds when the offsets are
    /// written: a release, and the next owner reading the committed offset, cannot come
    /// between them and be overwritten by a stale commit.
    func commitOffsets(group: String, _ offsets: [TopicPartition: Int64], checkedBy check: (Registry) throws -> Void) async throws {
        guard !configuration.readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        for (tp, offset) in offsets where offset < 0 {
            throw BrokerError(.offsetOutOfRange, "cannot commit negative offset \(offset) for \(tp)")
        }
        try registry.withLock { registry in
            try checkOpen(registry)
            try check(registry)
            // A topic deleted since the member read it: its offsets would outlive it and
            // apply to a topic made again under its name.
            let existing = offsets.filter { tp, _ in registry.topics[tp.topic].map { tp.partition < $0.partitions.count } ?? false }
            guard !existing.isEmpty else { return }
            try self.offsets.append(group: group, offsets: existing)
        }
        try await pendingDurability(self.offsets, upTo: 0).wait()
    }

    /// Every offset a group has committed.
    public func committedOffsets(group: String) -> [TopicPartition: Int64] {
        offsets.committed(group: group)
    }

    /// Whether in-process members (the saga's own workers) are in `group` now.
    public func hasInProcessMembers(group: String) -> Bool {
        registry.withLock { !($0.groups[group]?.state.members.isEmpty ?? true) }
    }

    /// Removes a topic and its files. Readers holding a partition finish on the open files.
    /// The files go under the registry's lock: a topic made again under the name at once
    /// must not have its new segments, which bear the same names, unlinked by this removal.
    public func deleteTopic(_ name: String) throws {
        guard !configuration.readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        try registry.withLock { (registry) in
            try checkOpen(registry)
            guard registry.topics[name] != nil else { throw BrokerError(.unknownTopic, "topic '\(name)' does not exist") }
            // Its groups' offsets go first: should the rest fail, the topic is still there
            // and its groups read it again from the start (redelivery), where the other
            // order could leave offsets that make a new topic of that name skip records.
            try self.offsets.forget { $0.topic == name }
            let topic = registry.topics.removeValue(forKey: name)!
            let specs = registry.topics.values.map(\.spec).sorted { $0.name < $1.name }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do {
                try FileSystem.writeAtomically(Array(try encoder.encode(specs)), to: Self.topicsFile(configuration.dataDirectory))
            } catch {
                registry.topics[name] = topic
                throw error
            }
            for log in topic.partitions { log.removeFiles() }
        }
        logger.notice("topic deleted", metadata: ["kafka.topic": "\(name)"])
    }
}
