import CRdKafka
import Foundation
import IOThreads
import Logging
import Messaging
import Synchronization

/// One consumer-group member on a Kafka cluster, behind the same `GroupConsumer` abstraction
/// the embedded broker's members implement.
///
/// - Offsets are committed only by `commit` (no auto-commit, no auto offset store).
/// - Rebalances use librdkafka's rebalance callback (eager `range` assignment by default,
///   incremental when the user configures a cooperative assignor); before partitions are
///   revoked the `onRevoke` hook runs so the worker commits what it finished.
/// - Delayed topics (retry tiers) are emulated: a record not yet due is not returned; its
///   partition is paused and rewound to it, and resumed once it is due.
/// - Every librdkafka call that may wait runs off the cooperative pool (`BlockingIO`), the
///   ones on this member's handle one at a time, in order (its `SerialLane`).
final class KafkaGroupConsumer: GroupConsumer, @unchecked Sendable {
    // Safe: every stored property is a `let`; the librdkafka handles are thread-safe for the
    // calls made here, and the calls that must not overlap run on `lane`.
    /// State the rebalance callback (on the polling thread) shares with the member's methods.
    final class Shared: @unchecked Sendable {
        // Safe: immutable but for `state`, a `Mutex`; `onRevoke` is a `@Sendable` closure.
        struct State {
            var assignment: Set<TopicPartition> = []
            var userPaused: Set<TopicPartition> = []
            /// Partitions held back until their next record is due (Unix milliseconds).
            var heldUntil: [TopicPartition: Int64] = [:]
            /// The rebalance protocol of the group, as last reported (eager by default).
            var cooperative = false
        }

        let state = Mutex(State())
        let onRevoke: (@Sendable (Set<TopicPartition>) async -> Void)?
        let startOffsets: (@Sendable (Set<TopicPartition>) async -> [TopicPartition: Int64])?
        let logger: Logger

        init(consumer: ConsumerConfiguration, logger: Logger) {
            self.onRevoke = consumer.onRevoke
            self.startOffsets = consumer.startOffsets
            self.logger = logger
        }
    }

    let handle: OpaquePointer
    private let queue: OpaquePointer
    private let shared: Shared
    private let sharedReference: Unmanaged<Shared>
    private let delays: [String: Int64]
    /// The librdkafka calls on this member that must not overlap, in order.
    private let lane = BlockingIO.SerialLane()
    private let closed = Atomic<Bool>(false)
    let group: String

    init(configuration: KafkaConfiguration, group: String, topics: [String], consumer: ConsumerConfiguration, delays: [String: Int64], logger: Logger) throws {
        self.group = group
        self.delays = delays
        shared = Shared(consumer: consumer, logger: logger)
        let defaults: [(String, String)] = [
            ("group.id", group),
            ("client.id", consumer.clientID),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", consumer.autoOffsetReset.rawValue),
            ("session.timeout.ms", "\(consumer.sessionTimeout.components.seconds * 1000 + consumer.sessionTimeout.components.attoseconds / 1_000_000_000_000_000)"),
            ("heartbeat.interval.ms", "\(max(100, (consumer.sessionTimeout.components.seconds * 1000) / 4))"),
            ("max.partition.fetch.bytes", "\(consumer.maxPartitionFetchBytes)"),
            // Eager assignment: librdkafka 2.0.x can assert on closing a cooperative member
            // (rdkafka_cgrp.c, assignment in progress). Users may still choose
            // `-X partition.assignment.strategy=cooperative-sticky` on newer librdkafka.
            ("partition.assignment.strategy", "range"),
            ("fetch.wait.max.ms", "50"),
            ("log.connection.close", "false"),
        ]
        let conf = try configuration.makeConf(defaults: defaults)
        sharedReference = Unmanaged.passRetained(shared)
        rd_kafka_conf_set_opaque(conf, sharedReference.toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        var message = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &message, message.count) else {
            rd_kafka_conf_destroy(conf)
            sharedReference.release()
            throw BrokerError(.invalidConfiguration, "cannot create a Kafka consumer for group \(group): \(KafkaConfiguration.text(message))")
        }
        self.handle = handle
        rd_kafka_poll_set_consumer(handle)
        queue = rd_kafka_queue_get_consumer(handle)
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let error = rd_kafka_subscribe(handle, list)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_queue_destroy(queue)
            rd_kafka_destroy(handle)
            sharedReference.release()
            throw BrokerError.kafka(error, "subscribing group \(group) to \(topics.joined(separator: ", "))")
        }
    }

    deinit {
        closeNow()
        sharedReference.release()
    }

    var memberID: String {
        guard let id = rd_kafka_memberid(handle) else { return "" }
        defer { rd_kafka_mem_free(handle, id) }
        return String(cString: id)
    }

    func poll(maxRecords: Int, maxWait: Duration) async throws -> [ConsumerRecord] {
        guard !closed.load(ordering: .acquiring) else { throw BrokerError(.closed, "consumer of group \(group) is closed") }
        resumeDueHolds()
        let timeout = Int32(maxWait.components.seconds * 1000 + maxWait.components.attoseconds / 1_000_000_000_000_000)
        let handleBits = UInt(bitPattern: handle)
        let queueBits = UInt(bitPattern: queue)
        let delays = delays
        let shared = shared
        let group = group
        return try await lane.run {
            let handle = OpaquePointer(bitPattern: handleBits)!
            let queue = OpaquePointer(bitPattern: queueBits)!
            let messages = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: max(maxRecords, 1))
            defer { messages.deallocate() }
            let n = rd_kafka_consume_batch_queue(queue, max(timeout, 0), messages, max(maxRecords, 1))
            guard n > 0 else { return [] }
            var records: [ConsumerRecord] = []
            records.reserveCapacity(n)
            var fatal: BrokerError?
            for i in 0..<n {
                guard let message = messages[i] else { continue }
                defer { rd_kafka_message_destroy(message) }
                let err = message.pointee.err
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    if err == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
                    if err == RD_KAFKA_RESP_ERR__FATAL {
                        fatal = BrokerError.kafka(err, "consumer of group \(group)")
                    } else {
                        shared.logger.warning("kafka consumer error", metadata: ["kafka.group": "\(group)", "error.message": "\(String(cString: rd_kafka_err2str(err)))"])
                    }
                    continue
                }
                records.append(Self.record(message))
            }
            if let fatal { throw fatal }
            return Self.holdBack(records, delays: delays, handle: handle, shared: shared)
        }
    }

    static func record(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> ConsumerRecord {
        let m = message.pointee
        let topic = String(cString: rd_kafka_topic_name(m.rkt))
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &type)
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        var headers: [RecordHeader] = []
        var list: OpaquePointer?
        if rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            var index = 0
            var name: UnsafePointer<CChar>?
            var bytes: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(RecordHeader(name.map { String(cString: $0) } ?? "", bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
                index += 1
            }
        }
        return ConsumerRecord(topic: topic, partition: Int(m.partition), offset: m.offset, timestamp: timestamp, key: key, value: value, headers: headers)
    }

    /// Delayed topics: returns the records that are due; a partition whose next record is not
    /// due yet is paused and rewound to that record until it is.
    private static func holdBack(_ records: [ConsumerRecord], delays: [String: Int64], handle: OpaquePointer, shared: Shared) -> [ConsumerRecord] {
        guard !delays.isEmpty else { return records }
        let now = UnixClock.nowMillis()
        var held: [TopicPartition: (offset: Int64, due: Int64)] = [:]
        var ready: [ConsumerRecord] = []
        ready.reserveCapacity(records.count)
        for record in records {
            let tp = record.topicPartition
            if held[tp] != nil { continue }
            if let delay = delays[record.topic], record.timestamp + delay > now {
                held[tp] = (record.offset, record.timestamp + delay)
                continue
            }
            ready.append(record)
        }
        guard !held.isEmpty else { return ready }
        let list = KafkaPartitionList.make(held.map { ($0.key, $0.value.offset) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_pause_partitions(handle, list)
        if let error = rd_kafka_seek_partitions(handle, list, 5000) {
            shared.logger.warning("could not rewind a delayed partition", metadata: ["error.message": "\(String(cString: rd_kafka_error_string(error)))"])
            rd_kafka_error_destroy(error)
        }
        shared.state.withLock { state in
            for (tp, hold) in held { state.heldUntil[tp] = hold.due }
        }
        return ready
    }

    /// Resumes held partitions whose record is due (unless the user paused them).
    private func resumeDueHolds() {
        let now = UnixClock.nowMillis()
        let due = shared.state.withLock { state -> [TopicPartition] in
            let due = state.heldUntil.filter { $0.value <= now }.map(\.key)
            for tp in due { state.heldUntil[tp] = nil }
            return due.filter { !state.userPaused.contains($0) && state.assignment.contains($0) }
        }
        guard !due.isEmpty else { return }
        let list = KafkaPartitionList.make(due.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_resume_partitions(handle, list)
    }

    func commit(_ offsets: [TopicPartition: Int64]) async throws {
        guard !offsets.isEmpty else { return }
        let owned = shared.state.withLock { $0.assignment }
        let foreign = offsets.keys.filter { !owned.contains($0) }
        guard foreign.isEmpty else {
            throw BrokerError(.notPartitionOwner, "group \(group): this member does not own \(foreign.sorted().map(\.description).joined(separator: ", "))")
        }
        let handleBits = UInt(bitPattern: handle)
        let group = group
        try await BlockingIO.run {
            let handle = OpaquePointer(bitPattern: handleBits)!
            try Self.commitNow(handle, offsets, group: group)
        }
    }

    static func commitNow(_ handle: OpaquePointer, _ offsets: [TopicPartition: Int64], group: String) throws {
        let list = KafkaPartitionList.make(offsets.map { ($0.key, $0.value) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_commit(handle, list, 0)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw BrokerError.kafka(error, "committing offsets of group \(group)") }
        for (tp, _, partitionError) in KafkaPartitionList.entries(list) where partitionError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw BrokerError.kafka(partitionError, "committing \(tp) for group \(group)")
        }
    }

    func assignment() async -> Set<TopicPartition> {
        shared.state.withLock { $0.assignment }
    }

    func pause(_ partitions: Set<TopicPartition>) async {
        guard !partitions.isEmpty else { return }
        shared.state.withLock { $0.userPaused.formUnion(partitions) }
        let list = KafkaPartitionList.make(partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_pause_partitions(handle, list)
    }

    func resume(_ partitions: Set<TopicPartition>) async {
        guard !partitions.isEmpty else { return }
        let resumable = shared.state.withLock { state -> [TopicPartition] in
            state.userPaused.subtract(partitions)
            return partitions.filter { state.heldUntil[$0] == nil }
        }
        guard !resumable.isEmpty else { return }
        let list = KafkaPartitionList.make(resumable.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_resume_partitions(handle, list)
    }

    func seek(_ partition: TopicPartition, to offset: Int64) async throws {
        guard shared.state.withLock({ $0.assignment.contains(partition) }) else {
            throw BrokerError(.notPartitionOwner, "group \(group): cannot seek \(partition), this member does not own it")
        }
        let handleBits = UInt(bitPattern: handle)
        try await lane.run {
            let list = KafkaPartitionList.make([(partition, offset)])
            defer { rd_kafka_topic_partition_list_destroy(list) }
            if let error = rd_kafka_seek_partitions(OpaquePointer(bitPattern: handleBits)!, list, 10_000) {
                throw BrokerError.kafka(consuming: error, "seeking \(partition)")
            }
        }
    }

    func close() async {
        try? await lane.run { self.closeNow() }
    }

    /// Leaves the group (the revoke callback runs, so finished work is committed) and frees
    /// the handle. Idempotent.
    private func closeNow() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = rd_kafka_consumer_close(handle)
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
    }
}

/// Carries the start offsets from the task that asks for them to the rebalance callback,
/// which waits on a semaphore until the task has written them.
private final class StartOffsetsAnswer: @unchecked Sendable {
    // Safe: written once by the task before it signals, read once after the wait.
    var offsets: [TopicPartition: Int64] = [:]
}

/// librdkafka's rebalance callback. Runs on the thread serving the consumer queue (inside
/// `poll` or `close`, never the cooperative pool), so waiting for the async `onRevoke` and
/// `startOffsets` here is safe: the first commits what the member finished before the
/// partitions move, the second says where granted partitions start.
private let rebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = { handle, reason, list, opaque in
    guard let handle, let list, let opaque else { return }
    let shared = Unmanaged<KafkaGroupConsumer.Shared>.fromOpaque(opaque).takeUnretainedValue()
    let partitions = Set(KafkaPartitionList.entries(list).map(\.0))
    // librdkafka answers NULL while the member is leaving; the protocol it joined with holds.
    let protocolName = rd_kafka_rebalance_protocol(handle).map { String(cString: $0) }
    let cooperative = shared.state.withLock { state -> Bool in
        if let protocolName { state.cooperative = protocolName == "COOPERATIVE" }
        return state.cooperative
    }
    switch reason {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        shared.state.withLock { $0.assignment.formUnion(partitions) }
        // An offset set in the list is where librdkafka starts, instead of the committed one.
        // Asked as `onRevoke` is: this thread waits (it is librdkafka's, inside `poll`).
        var own: [TopicPartition: Int64] = [:]
        if let startOffsets = shared.startOffsets {
            let answer = StartOffsetsAnswer()
            let done = DispatchSemaphore(value: 0)
            Task {
                answer.offsets = await startOffsets(partitions)
                done.signal()
            }
            done.wait()
            own = answer.offsets
        }
        if !own.isEmpty {
            for i in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[i]
                guard let offset = own[TopicPartition(String(cString: element.topic), Int(element.partition))] else { continue }
                list.pointee.elems[i].offset = offset > 0 ? offset : Int64(RD_KAFKA_OFFSET_BEGINNING)
            }
        }
        if cooperative {
            if let error = rd_kafka_incremental_assign(handle, list) { _ = BrokerError.kafka(consuming: error, "assign") }
        } else {
            rd_kafka_assign(handle, list)
        }
        // librdkafka keeps an application's pause across unassign and assign: a partition
        // held back for a record not yet due when it was revoked would come back paused, with
        // its hold forgotten and nothing to resume it. An assigned partition starts unpaused,
        // as with Kafka's Java client; a record still not due is held again when read.
        rd_kafka_resume_partitions(handle, list)
        shared.logger.info("partitions assigned", metadata: ["kafka.partitions": "\(partitions.count)"])
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        if let onRevoke = shared.onRevoke, rd_kafka_assignment_lost(handle) == 0 {
            let done = DispatchSemaphore(value: 0)
            Task { await onRevoke(partitions); done.signal() }
            done.wait()
        }
        shared.state.withLock { state in
            state.assignment.subtract(partitions)
            for tp in partitions { state.heldUntil[tp] = nil; state.userPaused.remove(tp) }
        }
        if cooperative {
            if let error = rd_kafka_incremental_unassign(handle, list) { _ = BrokerError.kafka(consuming: error, "unassign") }
        } else {
            rd_kafka_assign(handle, nil)
        }
        shared.logger.info("partitions revoked", metadata: ["kafka.partitions": "\(partitions.count)"])
    default:
        shared.logger.warning("rebalance error", metadata: ["error.message": "\(String(cString: rd_kafka_err2str(reason)))"])
        shared.state.withLock { $0.assignment.removeAll() }
        rd_kafka_assign(handle, nil)
    }
}
