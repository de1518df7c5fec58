@testable import Broker
@testable import Messaging
import Testing

/// Byte vectors produced by kafka-python (an independent implementation), see Tests/README.
@Suite struct RecordBatchCodecTests {
    @Test func crc32cMatchesTheCastagnoliCheckValues() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        let ramp = (0..<1000).map { UInt8($0 % 251) }
        #expect(CRC32C.checksum(ramp) == 0x11F6_6220)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    /// The CPU instruction and the tables agree on every length and alignment.
    @Test func theHardwareChecksumMatchesTheTables() {
        #expect(CRC32C.hardware, "this machine's CPU has SSE 4.2; the instruction path is what runs")
        var bytes = [UInt8](repeating: 0, count: 4099)
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in bytes.indices {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            bytes[i] = UInt8(truncatingIfNeeded: seed >> 33)
        }
        bytes.withUnsafeBytes { raw in
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 15, 16, 63, 1000, 4090 - start] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.tableChecksum(slice), "start \(start), length \(length)")
                }
            }
        }
    }

    @Test(arguments: [
        (Int64(0), "00"), (-1, "01"), (1, "02"), (63, "7e"), (-64, "7f"), (64, "8001"), (300, "d804"),
        (-300, "d704"), (2_147_483_647, "feffffff0f"), (1_700_000_000_000, "80a0abfef962"),
    ])
    func zigZagVarintsMatchKafka(value: Int64, encoded: String) throws {
        var writer = ByteWriter(capacity: 10)
        writer.writeVarint(value)
        #expect(hex(writer.bytes) == encoded)
        #expect(ByteWriter.varintSize(value) == encoded.count / 2)
        let decoded = try writer.bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            return try reader.readVarint()
        }
        #expect(decoded == value)
    }

    static let kafkaPythonBatch =
        "00000000000000000000005f00000000029664b2450000000000010000018bcfe568000000018bcfe56805ffffffffffffffffffffffffffff000000024a000000066f2d310e7b2261223a317d040e736167612d69640473310e617474656d707402300e000a0201027800"

    static let twoRecords = [
        ProducerRecord(
            topic: "t", key: Array("o-1".utf8), value: Array("{\"a\":1}".utf8),
            headers: [RecordHeader("saga-id", "s1"), RecordHeader("attempt", "0")], timestamp: 1_700_000_000_000),
        ProducerRecord(topic: "t", key: nil, value: Array("x".utf8), timestamp: 1_700_000_000_005),
    ]

    @Test func encodingMatchesKafkaPythonByteForByte() {
        let batch = RecordBatchCodec.encode(Self.twoRecords, baseOffset: 0, defaultTimestamp: 0)
        #expect(hex(batch) == Self.kafkaPythonBatch)
    }

    @Test func decodingAKafkaPythonBatchGivesBackRecordsAndHeaders() throws {
        let batch = bytes(hex: Self.kafkaPythonBatch)
        var records: [ConsumerRecord] = []
        var due: Int64?
        try batch.withUnsafeBytes { raw in
            let header = try RecordBatchHeader.parse(raw)
            #expect(header.batchLength == 95)
            #expect(header.crc == 0x9664_B245)
            #expect(header.lastOffsetDelta == 1)
            #expect(header.firstTimestamp == 1_700_000_000_000)
            #expect(header.maxTimestamp == 1_700_000_000_005)
            #expect(header.recordCount == 2)
            #expect(header.producerId == -1)
            #expect(RecordBatchHeader.hasValidChecksum(raw, header: header))
            try RecordBatchCodec.decodeRecords(batch: raw, header: header, topic: "t", partition: 3, fromOffset: 0, into: &records, nextDue: &due)
        }
        #expect(records.count == 2)
        #expect(records[0].keyString == "o-1")
        #expect(records[0].valueString == "{\"a\":1}")
        #expect(records[0].header("saga-id") == "s1")
        #expect(records[0].header("attempt") == "0")
        #expect(records[0].timestamp == 1_700_000_000_000)
        #expect(records[1].key == nil)
        #expect(records[1].offset == 1)
        #expect(records[1].timestamp == 1_700_000_000_005)
        #expect(records[1].headers.isEmpty)
    }

    @Test func patchingTheBaseOffsetKeepsTheChecksumValid() throws {
        var batch = RecordBatchCodec.encode(Self.twoRecords, baseOffset: 0, defaultTimestamp: 0)
        RecordBatchCodec.patchBaseOffset(4242, in: &batch)
        try batch.withUnsafeBytes { raw in
            let header = try RecordBatchHeader.parse(raw)
            #expect(header.baseOffset == 4242)
            #expect(header.lastOffset == 4243)
            #expect(RecordBatchHeader.hasValidChecksum(raw, header: header))
        }
    }

    @Test func aFlippedBitFailsTheChecksum() throws {
        var batch = bytes(hex: Self.kafkaPythonBatch)
        batch[70] ^= 0x01
        try batch.withUnsafeBytes { raw in
            let header = try RecordBatchHeader.parse(raw)
            #expect(!RecordBatchHeader.hasValidChecksum(raw, header: header))
        }
    }

    @Test(arguments: [
        ("21", Int32(-973_932_308), 0), ("foobar", -790_332_482, 6), ("a-little-bit-long-string", -985_981_536, 8),
        ("a-little-bit-longer-string", -1_486_304_829, 11), ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971, 5),
        ("abc", 479_470_107, 3), ("o-1001", -808_995_055, 1), ("", 275_646_681, 9),
    ])
    func murmur2PlacesKeysWhereJavaAndLibrdkafkaDo(key: String, hash: Int32, partitionOf12: Int) {
        #expect(Murmur2Partitioner.murmur2(Array(key.utf8)) == hash)
        #expect(Murmur2Partitioner.partition(forKey: Array(key.utf8), partitionCount: 12) == partitionOf12)
    }
}
