import CRdKafka
import Foundation
import Messaging
import Synchronization

/// An idempotent librdkafka producer (`enable.idempotence=true`, `acks=all`, murmur2 keys as
/// Java clients and the embedded broker partition them). `produce` returns only once every
/// record's delivery report came back, so callers commit offsets after durable publishing.
///
/// Delivery reports are served by one dedicated thread polling the handle; a batch's records
/// point at slots of one allocation, so a report costs no allocation.
final class KafkaProducer: @unchecked Sendable {
    // Safe: every stored property is a `let` (the handle is thread-safe in librdkafka; the
    // thread, flag and semaphore are synchronised themselves).
    let handle: OpaquePointer
    private let pollThread: Thread
    private let stopping = StopFlag()
    private let stopped = DispatchSemaphore(value: 0)

    static let defaults: [(String, String)] = [
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("partitioner", "murmur2_random"),
        ("linger.ms", "2"),
        ("queue.buffering.max.messages", "1000000"),
        ("queue.buffering.max.kbytes", "1048576"),
        ("batch.num.messages", "10000"),
        ("message.timeout.ms", "120000"),
        ("log.connection.close", "false"),
        // Topics are created on purpose (topology, `topics create`), never by a typo.
        ("allow.auto.create.topics", "false"),
    ]

    init(configuration: KafkaConfiguration, clientID: String) throws {
        let conf = try configuration.makeConf(defaults: Self.defaults + [("client.id", clientID)])
        rd_kafka_conf_set_dr_msg_cb(conf, deliveryReport)
        var message = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &message, message.count) else {
            rd_kafka_conf_destroy(conf)
            throw BrokerError(.invalidConfiguration, "cannot create a Kafka producer: \(KafkaConfiguration.text(message))")
        }
        self.handle = handle
        let stopping = self.stopping
        let stopped = self.stopped
        let handleBits = UInt(bitPattern: handle)
        pollThread = Thread {
            let handle = OpaquePointer(bitPattern: handleBits)!
            while !stopping.value.load(ordering: .acquiring) { rd_kafka_poll(handle, 50) }
            stopped.signal()
        }
        pollThread.name = "kafka-producer-poll"
        pollThread.start()
    }

    /// Waits up to `timeout` for queued records, then frees the handle.
    func close(timeout: Duration = .seconds(30)) {
        guard !stopping.value.exchange(true, ordering: .acquiringAndReleasing) else { return }
        stopped.wait()
        _ = rd_kafka_flush(handle, Int32(timeout.components.seconds * 1000))
        rd_kafka_destroy(handle)
    }

    deinit { close() }

    func produce(_ records: [ProducerRecord]) async throws -> [RecordMetadata] {
        guard !records.isEmpty else { return [] }
        let batch = DeliveryBatch(records)
        let retained = Unmanaged.passRetained(batch)
        var enqueued = 0
        defer { if enqueued < records.count { batch.abandon(records.count - enqueued) } }
        var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 8)
        var backoff = 0
        while enqueued < records.count {
            let record = records[enqueued]
            let slot = batch.slots + enqueued
            slot.initialize(to: DeliverySlot(batch: retained, index: enqueued))
            let error = Self.enqueue(record, opaque: UnsafeMutableRawPointer(slot), handle: handle, vus: &vus)
            guard let error else {
                enqueued += 1
                backoff = 0
                continue
            }
            if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                // The local queue is full: wait for deliveries to drain it (the poll thread serves them).
                rd_kafka_error_destroy(error)
                backoff = min(backoff + 1, 20)
                try? await Task.sleep(for: .milliseconds(backoff))
                continue
            }
            // Nobody will wait for this batch: the records already enqueued still report, and
            // the last report releases it.
            throw BrokerError.kafka(consuming: error, "producing to \(record.topic)")
        }
        return try await batch.result()
    }

    private static func enqueue(_ record: ProducerRecord, opaque: UnsafeMutableRawPointer, handle: OpaquePointer, vus: inout [rd_kafka_vu_t]) -> OpaquePointer? {
        var headers: OpaquePointer?
        if !record.headers.isEmpty {
            headers = rd_kafka_headers_new(record.headers.count)
            for header in record.headers {
                var name = header.key
                name.withUTF8 { nameBytes in
                    header.value.withUnsafeBytes { valueBytes in
                        _ = nameBytes.withMemoryRebound(to: CChar.self) { name in
                            rd_kafka_header_add(headers, name.baseAddress, name.count, valueBytes.baseAddress, valueBytes.count)
                        }
                    }
                }
            }
        }
        let error: OpaquePointer? = record.topic.withCString { topic in
            record.value.withUnsafeBytes { value in
                (record.key ?? []).withUnsafeBytes { key in
                    var n = 0
                    func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                        vus[n] = rd_kafka_vu_t()
                        vus[n].vtype = type
                        fill(&vus[n])
                        n += 1
                    }
                    add(RD_KAFKA_VTYPE_TOPIC) { $0.u.cstr = topic }
                    add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = record.partition.map(Int32.init) ?? RD_KAFKA_PARTITION_UA }
                    add(RD_KAFKA_VTYPE_VALUE) {
                        $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                        $0.u.mem.size = value.count
                    }
                    if record.key != nil {
                        add(RD_KAFKA_VTYPE_KEY) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                            $0.u.mem.size = key.count
                        }
                    }
                    add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                    add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
                    if let timestamp = record.timestamp { add(RD_KAFKA_VTYPE_TIMESTAMP) { $0.u.i64 = timestamp } }
                    if let headers { add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers } }
                    return vus.withUnsafeBufferPointer { rd_kafka_produceva(handle, $0.baseAddress, n) }
                }
            }
        }
        // On success librdkafka owns the headers; on failure they are still ours.
        if error != nil, let headers { rd_kafka_headers_destroy(headers) }
        return error
    }
}

/// Tells the poll thread to end.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// Where one record's delivery report lands: its batch and its position in the batch.
struct DeliverySlot {
    var batch: Unmanaged<DeliveryBatch>
    var index: Int
}

/// The records of one `produce` call on their way to the cluster. Completes once every
/// record was reported (acknowledged or failed); the last report releases it.
final class DeliveryBatch: @unchecked Sendable {
    // Safe: `state` is a `Mutex`; each slot and result is written by one report, and read
    // only after `remaining` reached 0 under that mutex.
    struct State {
        var remaining: Int
        var error: BrokerError?
        var continuation: CheckedContinuation<[RecordMetadata], Error>?
        var finished = false
    }

    let slots: UnsafeMutablePointer<DeliverySlot>
    /// Written by the delivery-report thread, one slot each, read after `remaining` reached 0.
    let results: UnsafeMutablePointer<RecordMetadata>
    let count: Int
    private let state: Mutex<State>

    init(_ records: [ProducerRecord]) {
        count = records.count
        slots = .allocate(capacity: count)
        results = .allocate(capacity: count)
        for (i, record) in records.enumerated() {
            (results + i).initialize(to: RecordMetadata(topic: record.topic, partition: record.partition ?? -1, offset: -1, timestamp: record.timestamp ?? 0))
        }
        state = Mutex(State(remaining: records.count))
    }

    deinit {
        slots.deallocate()
        results.deinitialize(count: count)
        results.deallocate()
    }

    /// One delivery report (on the producer's poll thread).
    func delivered(index: Int, partition: Int32, offset: Int64, timestamp: Int64, error: rd_kafka_resp_err_t) {
        results[index].partition = Int(partition)
        results[index].offset = offset
        results[index].timestamp = timestamp
        let failure = error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : BrokerError.kafka(error, "delivering to \(results[index].topic) [\(partition)]")
        finish(1, failure)
    }

    /// Records that were never enqueued will get no report.
    func abandon(_ count: Int) {
        finish(count, nil)
    }

    /// Counts reports; the one that completes the batch resumes the waiter (if one waits
    /// already) and drops the reference `produce` passed to the slots.
    private func finish(_ reports: Int, _ failure: BrokerError?) {
        let (done, continuation) = state.withLock { state -> (Bool, CheckedContinuation<[RecordMetadata], Error>?) in
            if let failure, state.error == nil { state.error = failure }
            state.remaining -= reports
            guard state.remaining == 0 else { return (false, nil) }
            state.finished = true
            defer { state.continuation = nil }
            return (true, state.continuation)
        }
        guard done else { return }
        if let continuation { complete(continuation) }
        Unmanaged.passUnretained(self).release()
    }

    private func complete(_ continuation: CheckedContinuation<[RecordMetadata], Error>) {
        if let error = state.withLock({ $0.error }) {
            continuation.resume(throwing: error)
        } else {
            continuation.resume(returning: Array(UnsafeBufferPointer(start: results, count: count)))
        }
    }

    func result() async throws -> [RecordMetadata] {
        try await withCheckedThrowingContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.finished { return true }
                state.continuation = continuation
                return false
            }
            if done { complete(continuation) }
        }
    }
}

/// librdkafka's delivery-report callback: finds the record's slot through its opaque pointer.
private let deliveryReport: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = { _, message, _ in
    guard let message, let opaque = message.pointee._private else { return }
    let slot = opaque.assumingMemoryBound(to: DeliverySlot.self).pointee
    var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    let timestamp = rd_kafka_message_timestamp(message, &timestampType)
    slot.batch.takeUnretainedValue().delivered(
        index: slot.index, partition: message.pointee.partition, offset: message.pointee.offset, timestamp: timestamp, error: message.pointee.err)
}
