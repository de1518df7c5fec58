import Messaging

/// Big-endian integers and Kafka's zig-zag varints, appended to a byte array.
struct ByteWriter {
    var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func writeInt8(_ v: Int8) { bytes.append(UInt8(bitPattern: v)) }
    mutating func writeInt16(_ v: Int16) { writeBigEndian(UInt16(bitPattern: v)) }
    mutating func writeInt32(_ v: Int32) { writeBigEndian(UInt32(bitPattern: v)) }
    mutating func writeInt64(_ v: Int64) { writeBigEndian(UInt64(bitPattern: v)) }

    mutating func writeBigEndian<T: FixedWidthInteger>(_ v: T) {
        var big = v.bigEndian
        withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
    }

    /// Zig-zag varint (Kafka `varint`/`varlong`: both zig-zag a signed value).
    mutating func writeVarint(_ v: Int64) {
        var u = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        while u >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: u) | 0x80)
            u >>= 7
        }
        bytes.append(UInt8(u))
    }

    mutating func write(_ other: some Sequence<UInt8>) { bytes.append(contentsOf: other) }

    static func varintSize(_ v: Int64) -> Int {
        var u = UInt64(bitPattern: (v << 1) ^ (v >> 63))
        var size = 1
        while u >= 0x80 {
            u >>= 7
            size += 1
        }
        return size
    }
}

/// Reads what `ByteWriter` writes; every read is bounds-checked and throws on truncation.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    var position: Int

    init(_ base: UnsafeRawBufferPointer, position: Int = 0) {
        self.base = base
        self.position = position
    }

    var remaining: Int { base.count - position }

    @inline(__always)
    mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw BrokerError(.corruptRecord, "record batch truncated") }
        var value: T = 0
        for i in 0..<size { value = value << 8 | T(base[position + i]) }
        position += size
        return value
    }

    mutating func readInt8() throws -> Int8 { Int8(bitPattern: try readBigEndian(UInt8.self)) }
    mutating func readInt16() throws -> Int16 { Int16(bitPattern: try readBigEndian(UInt16.self)) }
    mutating func readInt32() throws -> Int32 { Int32(bitPattern: try readBigEndian(UInt32.self)) }
    mutating func readInt64() throws -> Int64 { Int64(bitPattern: try readBigEndian(UInt64.self)) }

    @inline(__always)
    mutating func readVarint() throws -> Int64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < base.count else { throw BrokerError(.corruptRecord, "varint truncated") }
            let byte = base[position]
            position += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { break }
            shift += 7
            guard shift < 64 else { throw BrokerError(.corruptRecord, "varint too long") }
        }
        return Int64(bitPattern: result >> 1) ^ -Int64(bitPattern: result & 1)
    }

    mutating func readBytes(_ count: Int) throws -> [UInt8] {
        guard count >= 0, remaining >= count else { throw BrokerError(.corruptRecord, "field of \(count) bytes truncated") }
        let slice = UnsafeRawBufferPointer(rebasing: base[position..<(position + count)])
        position += count
        return [UInt8](slice)
    }
}
