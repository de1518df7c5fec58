import Broker
import Messaging
import NIOCore

/// A malformed request: the connection is answered with an error or closed, never the broker.
struct WireError: Error, CustomStringConvertible {
    /// What was wrong with the frame: extensible, as `BrokerError.Code` is, for logs and
    /// counters that group refusals by kind.
    struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        var description: String { name }

        /// The frame ended before a field it announced.
        static let truncated = Code(name: "truncated")
        /// A field holds a value no valid request has (a null string, a varint too long).
        static let malformed = Code(name: "malformed")
        /// An API key or version this door does not serve.
        static let unsupported = Code(name: "unsupported")
        /// The frame is bigger than the door accepts.
        static let tooLarge = Code(name: "too_large")
        /// A frame's bytes stopped arriving before it was whole (`ListenerLimits.frameDeadline`).
        static let deadline = Code(name: "frame_deadline")
        /// Nothing was sent or received for `ListenerLimits.idleTimeout`.
        static let idle = Code(name: "idle_timeout")
        /// A request before SASL authentication, or after it failed.
        static let unauthenticated = Code(name: "unauthenticated")
    }

    var code: Code
    var description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// Reads Kafka's big-endian primitives from one request frame.
struct WireReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else { throw WireError(.truncated, "request truncated: wanted \(n) bytes at \(position), \(remaining) left") }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try take(MemoryLayout<T>.size).reduce(T.zero) { $0 << 8 | T(truncatingIfNeeded: $1) }
    }

    mutating func int8() throws -> Int8 { try integer(Int8.self) }
    mutating func int16() throws -> Int16 { try integer(Int16.self) }
    mutating func int32() throws -> Int32 { try integer(Int32.self) }
    mutating func int64() throws -> Int64 { try integer(Int64.self) }

    mutating func nullableString() throws -> String? {
        let length = Int(try int16())
        if length < 0 { return nil }
        return String(decoding: try take(length), as: UTF8.self)
    }

    mutating func string() throws -> String {
        guard let value = try nullableString() else { throw WireError(.malformed, "null where a string is required at \(position)") }
        return value
    }

    mutating func nullableBytes() throws -> [UInt8]? {
        let length = Int(try int32())
        if length < 0 { return nil }
        return Array(try take(length))
    }

    /// An array's element count (-1: null); bounded by what is left, so a lying count cannot
    /// make the broker allocate or loop for long.
    mutating func arrayCount() throws -> Int {
        let count = Int(try int32())
        guard count <= remaining else { throw WireError(.truncated, "array of \(count) elements in \(remaining) bytes") }
        return count
    }

    mutating func unsignedVarint() throws -> UInt32 {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            let byte = try take(1).first!
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            guard shift < 35 else { throw WireError(.malformed, "varint too long") }
        }
    }

    mutating func compactString() throws -> String? {
        let length = Int(try unsignedVarint()) - 1
        if length < 0 { return nil }
        return String(decoding: try take(length), as: UTF8.self)
    }

    /// Skips a tagged-fields section (flexible versions).
    mutating func taggedFields() throws {
        let count = try unsignedVarint()
        for _ in 0..<count {
            _ = try unsignedVarint()
            _ = try take(Int(try unsignedVarint()))
        }
    }
}

/// Writes Kafka's big-endian primitives.
struct WireWriter {
    var bytes: [UInt8] = []
    /// A large byte field kept by reference: `part` goes at `at` in `bytes` (before the byte
    /// written there). A fetch's batches reach the socket as the buffers they were read into.
    struct Splice: Sendable {
        var at: Int
        var part: ByteBuffer
    }
    private(set) var spliced: [Splice] = []

    mutating func int8(_ v: Int8) { bytes.append(UInt8(bitPattern: v)) }
    mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    mutating func int16(_ v: Int16) { append(v) }
    mutating func int32(_ v: Int32) { append(v) }
    mutating func int64(_ v: Int64) { append(v) }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ s: String?) {
        guard let s else { return int16(-1) }
        int16(Int16(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    /// Bytes given in parts, one length-prefixed field, spliced in by reference (`spliced`),
    /// not copied.
    mutating func bytes(_ parts: [ByteBuffer]) {
        int32(Int32(parts.byteCount))
        for part in parts where part.readableBytes > 0 { spliced.append(Splice(at: bytes.count, part: part)) }
    }

    mutating func nullableBytes(_ b: [UInt8]?) {
        guard let b else { return int32(-1) }
        int32(Int32(b.count))
        bytes.append(contentsOf: b)
    }

    mutating func array<T>(_ items: [T], _ write: (inout WireWriter, T) -> Void) {
        int32(Int32(items.count))
        for item in items { write(&self, item) }
    }

    mutating func unsignedVarint(_ v: UInt32) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}
