import Broker
import Messaging

extension WireRequestHandler {
    // MARK: InitProducerId

    func writeInitProducerID(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) throws {
        let transactionalID = try r.nullableString()
        _ = try r.int32()  // transaction timeout
        w.int32(0)  // throttle
        if transactionalID != nil {
            // Transactions are not served; an idempotent producer sends no transactional id.
            w.int16(ErrorCode.transactionalIDAuthorizationFailed.rawValue)
            w.int64(-1)
            w.int16(-1)
            return
        }
        w.int16(0)
        w.int64(producers.newProducerID())
        w.int16(0)
    }

    // MARK: Produce

    struct ProduceRefusal: Error {
        var code: ErrorCode
        var reason: String
    }

    /// Returns the request's acks.
    func writeProduce(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, grants: TopicGrants?, durability: inout [EmbeddedBroker.PendingDurability]) async throws -> Int16 {
        _ = try r.nullableString()  // transactional id: its batches are refused below
        let acks = try r.int16()
        _ = try r.int32()  // timeout
        let topicCount = try r.arrayCount()
        var results: [(String, [(Int32, ErrorCode, Int64)])] = []
        for _ in 0..<max(topicCount, 0) {
            let topic = try r.string()
            var partitions: [(Int32, ErrorCode, Int64)] = []
            for _ in 0..<max(try r.arrayCount(), 0) {
                let partition = try r.int32()
                let records = try r.nullableBytes() ?? []
                if let grants, !grants.mayProduce(topic) {
                    partitions.append((partition, .topicAuthorizationFailed, -1))
                    continue
                }
                do {
                    let (offset, pending) = try await append(records, topic: topic, partition: Int(partition))
                    durability.append(pending)
                    partitions.append((partition, .none, offset))
                } catch let error as ProduceRefusal {
                    logger.notice("produce refused", metadata: ["kafka.topic": "\(topic)", "kafka.partition": "\(partition)", "error.message": "\(error.reason)"])
                    partitions.append((partition, error.code, -1))
                } catch let error as BrokerError where error.code == .recordTooLarge {
                    partitions.append((partition, .messageTooLarge, -1))
                } catch let error as BrokerError where error.code == .unknownTopic || error.code == .invalidPartition {
                    // The append names the partition; no separate lookup per request.
                    partitions.append((partition, .unknownTopicOrPartition, -1))
                } catch {
                    logger.error("produce failed", metadata: ["kafka.topic": "\(topic)", "error.message": "\(error)"])
                    partitions.append((partition, .kafkaStorageError, -1))
                }
            }
            results.append((topic, partitions))
        }
        w.array(results) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, p in
                w.int32(p.0)
                w.int16(p.1.rawValue)
                w.int64(p.2)
                w.int64(-1)  // log append time: create time is used
                if version >= 5 { w.int64(0) }  // log start offset
            }
        }
        w.int32(0)  // throttle
        return acks
    }

    /// Verifies the batches of one partition and appends them as they are (idempotent
    /// producers' retries answered from memory). Returns the base offset of the first batch.
    /// The durability to wait on is the last batch's: a sync round covers everything
    /// appended to the partition before it.
    func append(_ bytes: [UInt8], topic: String, partition: Int) async throws -> (Int64, EmbeddedBroker.PendingDurability) {
        let batches = try Self.verifiedBatches(bytes, compressedAllowed: !options.inProcessTopics.contains(topic))
        var first: Int64?
        var durability = EmbeddedBroker.PendingDurability.none
        for (header, batch) in batches {
            let offset: Int64
            if header.producerId >= 0 {
                (offset, durability) = try await appendIdempotent(batch, header: header, topic: topic, partition: partition, after: durability)
            } else {
                (offset, durability) = try broker.appendBatches([batch], topic: topic, partition: partition)
            }
            if first == nil { first = offset }
        }
        return (first ?? -1, durability)
    }

    func appendIdempotent(
        _ batch: [UInt8], header: RecordBatchHeader, topic: String, partition: Int, after earlier: EmbeddedBroker.PendingDurability
    ) async throws -> (Int64, EmbeddedBroker.PendingDurability) {
        let key = ProducerSequences.Key(producerID: header.producerId, partition: TopicPartition(topic, partition))
        if header.baseSequence != 0 && !producers.isKnown(key) {
            // Unknown mid-stream: the broker restarted. Relearn this producer's last batches
            // from the log's tail, so a retry of an appended batch is still recognised.
            producers.seed(key, from: try await tailHeaders(topic: topic, partition: partition))
        }
        let last = ProducerSequences.lastSequence(header)
        switch producers.check(key, epoch: header.producerEpoch, firstSequence: header.baseSequence, lastSequence: last) {
        case .duplicate(let offset):
            logger.info("duplicate batch of an idempotent producer acknowledged without a second append", metadata: [
                "kafka.topic": "\(topic)", "kafka.partition": "\(partition)", "kafka.producer_id": "\(header.producerId)", "kafka.sequence": "\(header.baseSequence)",
            ])
            // The original append may still be syncing: acknowledge with whatever this request waits on.
            return (offset, earlier)
        case .refuse(let code, let reason):
            throw ProduceRefusal(code: code, reason: reason)
        case .append:
            let (offset, durability) = try broker.appendBatches([batch], topic: topic, partition: partition)
            producers.record(key, epoch: header.producerEpoch, batch: .init(firstSequence: header.baseSequence, lastSequence: last, baseOffset: offset))
            return (offset, durability)
        }
    }

    /// Headers of the batches in a partition's last ~10,000 records.
    func tailHeaders(topic: String, partition: Int) async throws -> [RecordBatchHeader] {
        let partitions = try await broker.describeTopic(topic).partitions
        guard partitions.indices.contains(partition) else { throw BrokerError(.invalidPartition, "topic '\(topic)' has no partition \(partition)") }
        let range = partitions[partition]
        var offset = max(range.beginOffset, range.endOffset - 10_000)
        var headers: [RecordBatchHeader] = []
        while offset < range.endOffset {
            let chunk = try broker.readBatches(topic: topic, partition: partition, from: offset, maxBytes: 1 << 20)
            let bytes = chunk.bytes
            guard !bytes.isEmpty else { break }
            try bytes.withUnsafeBytes { raw in
                var position = 0
                while position + RecordBatchHeader.size <= raw.count {
                    let header = try RecordBatchHeader.parse(UnsafeRawBufferPointer(rebasing: raw[position...]))
                    headers.append(header)
                    offset = header.lastOffset + 1
                    position += header.totalSize
                }
            }
        }
        return headers
    }

    /// Splits a Produce request's record set into v2 batches, each checked: framing, magic,
    /// CRC-32C, and (uncompressed) the records inside. Any failure refuses the whole set.
    static func verifiedBatches(_ bytes: [UInt8], compressedAllowed: Bool) throws -> [(RecordBatchHeader, [UInt8])] {
        var batches: [(RecordBatchHeader, [UInt8])] = []
        try bytes.withUnsafeBytes { raw in
            var position = 0
            while position < raw.count {
                let rest = UnsafeRawBufferPointer(rebasing: raw[position...])
                guard rest.count >= RecordBatchHeader.size else { throw ProduceRefusal(code: .corruptMessage, reason: "truncated record batch") }
                let header: RecordBatchHeader
                do { header = try RecordBatchHeader.parse(rest) } catch { throw ProduceRefusal(code: .corruptMessage, reason: "\(error)") }
                guard header.totalSize <= rest.count else { throw ProduceRefusal(code: .corruptMessage, reason: "record batch length \(header.batchLength) overruns the request") }
                let batch = UnsafeRawBufferPointer(rebasing: rest[..<header.totalSize])
                guard RecordBatchHeader.hasValidChecksum(batch, header: header) else { throw ProduceRefusal(code: .corruptMessage, reason: "CRC-32C mismatch") }
                guard !header.isTransactional, !header.isControl else {
                    throw ProduceRefusal(code: .invalidRequest, reason: "transactional and control batches are not accepted (no transactions here)")
                }
                if header.compressionCodec == 0 {
                    do { try RecordBatchCodec.validateRecords(batch: batch, header: header) } catch {
                        throw ProduceRefusal(code: .corruptMessage, reason: "\(error)")
                    }
                } else {
                    guard header.compressionCodec <= 4 else { throw ProduceRefusal(code: .corruptMessage, reason: "unknown compression codec \(header.compressionCodec)") }
                    guard compressedAllowed else {
                        throw ProduceRefusal(code: .unsupportedCompressionType, reason: "compressed batches (codec \(header.compressionCodec)) are refused on topics the saga in this process reads")
                    }
                }
                batches.append((header, Array(batch)))
                position += header.totalSize
            }
        }
        return batches
    }
}
