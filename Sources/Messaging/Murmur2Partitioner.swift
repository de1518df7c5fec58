/// Kafka's default partitioner: murmur2 of the key bytes, made positive, modulo the partition
/// count. A key lands where a Java client or librdkafka (`partitioner=murmur2_random`) puts it.
public enum Murmur2Partitioner {
    /// The 32-bit murmur2 hash exactly as `org.apache.kafka.common.utils.Utils.murmur2` computes it.
    public static func murmur2(_ data: some Collection<UInt8>) -> Int32 {
        let bytes = Array(data)
        let length = bytes.count
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h: UInt32 = seed ^ UInt32(truncatingIfNeeded: length)
        let length4 = length / 4
        for i in 0..<length4 {
            let i4 = i * 4
            var k = UInt32(bytes[i4]) | UInt32(bytes[i4 + 1]) << 8 | UInt32(bytes[i4 + 2]) << 16 | UInt32(bytes[i4 + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = length & ~3
        switch length % 4 {
        case 3:
            h ^= UInt32(bytes[tail + 2]) << 16
            h ^= UInt32(bytes[tail + 1]) << 8
            h ^= UInt32(bytes[tail])
            h = h &* m
        case 2:
            h ^= UInt32(bytes[tail + 1]) << 8
            h ^= UInt32(bytes[tail])
            h = h &* m
        case 1:
            h ^= UInt32(bytes[tail])
            h = h &* m
        default:
            break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    /// The partition for a key; a `nil` key picks a random partition, as `murmur2_random` does.
    public static func partition(forKey key: [UInt8]?, partitionCount: Int) -> Int {
        precondition(partitionCount > 0)
        guard let key else { return Int.random(in: 0..<partitionCount) }
        let positive = UInt32(bitPattern: murmur2(key)) & 0x7fff_ffff
        return Int(positive % UInt32(partitionCount))
    }
}
