import Messaging

/// The fixed 61-byte header of a Kafka v2 record batch (magic 2), as stored on disk and sent
/// on the wire. Everything after `crc` is covered by the CRC-32C, which is why the broker
/// may patch `baseOffset` (and only it) without re-encoding or re-checksumming a batch.
public struct RecordBatchHeader: Hashable, Sendable {
    public static let size = 61
    /// `baseOffset` + `batchLength`: the part of the header not counted in `batchLength`.
    public static let logOverhead = 12
    static let crcPosition = 17
    static let attributesPosition = 21

    public var baseOffset: Int64
    /// Bytes after the `batchLength` field itself.
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var firstTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordCount: Int32

    public var totalSize: Int { Self.logOverhead + Int(batchLength) }
    public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    public var compressionCodec: Int { Int(attributes & 0x7) }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }

    /// Parses the header at the start of `bytes`; checks magic and a sane length, not the CRC.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws -> RecordBatchHeader {
        guard bytes.count >= size else { throw BrokerError(.corruptRecord, "record batch header truncated (\(bytes.count) of \(size) bytes)") }
        var r = ByteReader(bytes)
        let header = RecordBatchHeader(
            baseOffset: try r.readInt64(), batchLength: try r.readInt32(), partitionLeaderEpoch: try r.readInt32(),
            magic: try r.readInt8(), crc: try r.readBigEndian(UInt32.self), attributes: try r.readInt16(),
            lastOffsetDelta: try r.readInt32(), firstTimestamp: try r.readInt64(), maxTimestamp: try r.readInt64(),
            producerId: try r.readInt64(), producerEpoch: try r.readInt16(), baseSequence: try r.readInt32(),
            recordCount: try r.readInt32())
        guard header.magic == 2 else { throw BrokerError(.corruptRecord, "record batch magic \(header.magic), only v2 (magic 2) is supported") }
        guard Int(header.batchLength) >= size - logOverhead else {
            throw BrokerError(.corruptRecord, "record batch length \(header.batchLength) is shorter than its header")
        }
        guard header.lastOffsetDelta >= 0, header.recordCount >= 0 else {
            throw BrokerError(.corruptRecord, "record batch with negative offset delta or record count")
        }
        return header
    }

    /// Whether the stored CRC matches `attributes..end` of the whole batch in `bytes`.
    public static func hasValidChecksum(_ batch: UnsafeRawBufferPointer, header: RecordBatchHeader) -> Bool {
        guard batch.count >= header.totalSize else { return false }
        return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: batch[attributesPosition..<header.totalSize])) == header.crc
    }
}

/// Encodes and decodes v2 record batches.
public enum RecordBatchCodec {
    /// Encodes records into one uncompressed batch starting at `baseOffset` (the broker patches
    /// it at append time). Records without a timestamp get `defaultTimestamp`.
    public static func encode(
        _ records: some Collection<ProducerRecord>, baseOffset: Int64 = 0, defaultTimestamp: Int64,
        producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1
    ) -> [UInt8] {
        precondition(!records.isEmpty, "a record batch holds at least one record")
        var firstTimestamp = Int64.max
        var maxTimestamp = Int64.min
        var estimate = RecordBatchHeader.size
        for record in records {
            let ts = record.timestamp ?? defaultTimestamp
            if firstTimestamp == Int64.max { firstTimestamp = ts }
            maxTimestamp = max(maxTimestamp, ts)
            estimate += 24 + (record.key?.count ?? 0) + record.value.count
            for header in record.headers { estimate += 10 + header.key.utf8.count + header.value.count }
        }
        var w = ByteWriter(capacity: estimate)
        w.writeInt64(baseOffset)
        w.writeInt32(0)  // batchLength, patched below
        w.writeInt32(0)  // partitionLeaderEpoch: the broker owns it; 0 like every client writes
        w.writeInt8(2)
        w.writeInt32(0)  // crc, patched below
        w.writeInt16(0)  // attributes: no compression, create time
        w.writeInt32(Int32(records.count - 1))
        w.writeInt64(firstTimestamp)
        w.writeInt64(maxTimestamp)
        w.writeInt64(producerId)
        w.writeInt16(producerEpoch)
        w.writeInt32(baseSequence)
        w.writeInt32(Int32(records.count))

        var offsetDelta: Int64 = 0
        for record in records {
            let timestampDelta = (record.timestamp ?? defaultTimestamp) - firstTimestamp
            let keyLength = Int64(record.key?.count ?? -1)
            let valueLength = Int64(record.value.count)
            var bodySize = 1 + ByteWriter.varintSize(timestampDelta) + ByteWriter.varintSize(offsetDelta)
            bodySize += ByteWriter.varintSize(keyLength) + max(0, Int(keyLength))
            bodySize += ByteWriter.varintSize(valueLength) + Int(valueLength)
            bodySize += ByteWriter.varintSize(Int64(record.headers.count))
            for header in record.headers {
                let k = header.key.utf8.count
                bodySize += ByteWriter.varintSize(Int64(k)) + k + ByteWriter.varintSize(Int64(header.value.count)) + header.value.count
            }
            w.writeVarint(Int64(bodySize))
            w.writeInt8(0)
            w.writeVarint(timestampDelta)
            w.writeVarint(offsetDelta)
            w.writeVarint(keyLength)
            if let key = record.key { w.write(key) }
            w.writeVarint(valueLength)
            w.write(record.value)
            w.writeVarint(Int64(record.headers.count))
            for header in record.headers {
                w.writeVarint(Int64(header.key.utf8.count))
                w.write(header.key.utf8)
                w.writeVarint(Int64(header.value.count))
                w.write(header.value)
            }
            offsetDelta += 1
        }
        var bytes = w.bytes
        let batchLength = Int32(bytes.count - RecordBatchHeader.logOverhead)
        storeBigEndian(UInt32(bitPattern: batchLength), into: &bytes, at: 8)
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.attributesPosition...])) }
        storeBigEndian(crc, into: &bytes, at: RecordBatchHeader.crcPosition)
        return bytes
    }

    /// Overwrites a batch's base offset in place (outside the CRC, so the batch stays valid).
    public static func patchBaseOffset(_ offset: Int64, in bytes: inout [UInt8], at position: Int = 0) {
        storeBigEndian(UInt64(bitPattern: offset), into: &bytes, at: position)
    }

    static func storeBigEndian<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at position: Int) {
        let size = MemoryLayout<T>.size
        for i in 0..<size { bytes[position + i] = UInt8(truncatingIfNeeded: value >> (8 * (size - 1 - i))) }
    }

    /// Checks, without copying anything, that an uncompressed batch holds exactly
    /// `recordCount` well-formed records filling it to the end, with offset deltas inside
    /// `lastOffsetDelta`: what an in-process reader will need to decode it later.
    public static func validateRecords(batch: UnsafeRawBufferPointer, header: RecordBatchHeader) throws {
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: batch[..<header.totalSize]), position: RecordBatchHeader.size)
        func skip(_ count: Int64) throws {
            guard count >= 0, count <= r.remaining else { throw BrokerError(.corruptRecord, "a record field of \(count) bytes overruns its batch") }
            r.position += Int(count)
        }
        for _ in 0..<header.recordCount {
            let length = try r.readVarint()
            guard length >= 0, length <= r.remaining else { throw BrokerError(.corruptRecord, "record length \(length) overruns its batch") }
            let end = r.position + Int(length)
            _ = try r.readInt8()
            _ = try r.readVarint()
            let delta = try r.readVarint()
            guard delta >= 0, delta <= Int64(header.lastOffsetDelta) else { throw BrokerError(.corruptRecord, "record offset delta \(delta) outside the batch") }
            let keyLength = try r.readVarint()
            if keyLength >= 0 { try skip(keyLength) }
            let valueLength = try r.readVarint()
            if valueLength >= 0 { try skip(valueLength) }
            let headerCount = try r.readVarint()
            guard headerCount >= 0, headerCount <= length else { throw BrokerError(.corruptRecord, "header count \(headerCount) is invalid") }
            for _ in 0..<headerCount {
                try skip(try r.readVarint())
                let headerValueLength = try r.readVarint()
                if headerValueLength >= 0 { try skip(headerValueLength) }
            }
            guard r.position == end else { throw BrokerError(.corruptRecord, "a record does not match its length") }
        }
        guard r.remaining == 0 else { throw BrokerError(.corruptRecord, "\(r.remaining) bytes after the batch's \(header.recordCount) records") }
    }

    /// Decodes the records of one uncompressed batch whose offset is at least `fromOffset`.
    /// Stops early (returning `false`) at the first record whose `timestamp + delay` is later
    /// than `notAfter`, reporting that record's due time in `nextDue`.
    @discardableResult
    public static func decodeRecords(
        batch: UnsafeRawBufferPointer, header: RecordBatchHeader, topic: String, partition: Int,
        fromOffset: Int64, into records: inout [ConsumerRecord],
        dueCutoff: Int64? = nil, deliveryDelay: Int64 = 0, nextDue: inout Int64?
    ) throws -> Bool {
        guard header.compressionCodec == 0 else {
            throw BrokerError(.unsupported, "compressed record batches (codec \(header.compressionCodec)) cannot be decoded in-process yet")
        }
        if header.isControl { return true }
        var r = ByteReader(batch, position: RecordBatchHeader.size)
        for _ in 0..<header.recordCount {
            let length = Int(try r.readVarint())
            guard length >= 0, r.remaining >= length else { throw BrokerError(.corruptRecord, "record length \(length) overruns its batch") }
            let end = r.position + length
            _ = try r.readInt8()
            let timestamp = header.firstTimestamp + (try r.readVarint())
            let offset = header.baseOffset + (try r.readVarint())
            if offset < fromOffset {
                r.position = end
                continue
            }
            if let dueCutoff, timestamp + deliveryDelay > dueCutoff {
                nextDue = timestamp + deliveryDelay
                return false
            }
            let keyLength = Int(try r.readVarint())
            let key: [UInt8]? = keyLength < 0 ? nil : try r.readBytes(keyLength)
            let valueLength = Int(try r.readVarint())
            let value: [UInt8] = valueLength < 0 ? [] : try r.readBytes(valueLength)
            let headerCount = Int(try r.readVarint())
            guard headerCount >= 0, headerCount <= length else { throw BrokerError(.corruptRecord, "header count \(headerCount) is invalid") }
            var headers: [RecordHeader] = []
            if headerCount > 0 {
                headers.reserveCapacity(headerCount)
                for _ in 0..<headerCount {
                    let keyBytes = try r.readBytes(Int(try r.readVarint()))
                    let valueLength = Int(try r.readVarint())
                    let headerValue: [UInt8] = valueLength < 0 ? [] : try r.readBytes(valueLength)
                    headers.append(RecordHeader(String(decoding: keyBytes, as: UTF8.self), headerValue))
                }
            }
            guard r.position == end else { throw BrokerError(.corruptRecord, "record at offset \(offset) does not match its length") }
            records.append(ConsumerRecord(
                topic: topic, partition: partition, offset: offset, timestamp: timestamp,
                key: key, value: value, headers: headers))
        }
        return true
    }
}
