/// A sparse offset index over one segment, like Kafka's `.index`: every `intervalBytes` of
/// log, one entry maps an offset (relative to the segment's base) to the byte position of the
/// batch holding it. Persisted as 8-byte big-endian pairs; always rebuildable from the log.
struct OffsetIndex: Sendable {
    static let entrySize = 8
    private(set) var relativeOffsets: [UInt32] = []
    private(set) var positions: [UInt32] = []

    var count: Int { positions.count }

    mutating func append(relativeOffset: UInt32, position: UInt32) {
        relativeOffsets.append(relativeOffset)
        positions.append(position)
    }

    mutating func removeAll() {
        relativeOffsets.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
    }

    /// The position of the last indexed batch starting at or before `relativeOffset` (0 if none).
    func floorPosition(for relativeOffset: UInt32) -> (relativeOffset: UInt32, position: UInt32) {
        var low = 0
        var high = relativeOffsets.count - 1
        var found: Int?
        while low <= high {
            let mid = (low + high) / 2
            if relativeOffsets[mid] <= relativeOffset {
                found = mid
                low = mid + 1
            } else {
                high = mid - 1
            }
        }
        guard let found else { return (0, 0) }
        return (relativeOffsets[found], positions[found])
    }

    static func encodeEntry(relativeOffset: UInt32, position: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: entrySize)
        RecordBatchCodec.storeBigEndian(relativeOffset, into: &bytes, at: 0)
        RecordBatchCodec.storeBigEndian(position, into: &bytes, at: 4)
        return bytes
    }

    /// Decodes a persisted index; `nil` when it is not a plausible index for a log of `logSize` bytes.
    static func decode(_ bytes: [UInt8], logSize: Int64) -> OffsetIndex? {
        guard bytes.count % entrySize == 0 else { return nil }
        var index = OffsetIndex()
        var previous: (UInt32, UInt32)?
        for start in stride(from: 0, to: bytes.count, by: entrySize) {
            var relative: UInt32 = 0
            var position: UInt32 = 0
            for i in 0..<4 {
                relative = relative << 8 | UInt32(bytes[start + i])
                position = position << 8 | UInt32(bytes[start + 4 + i])
            }
            if let previous, relative <= previous.0 || position <= previous.1 { return nil }
            guard Int64(position) < logSize else { return nil }
            index.append(relativeOffset: relative, position: position)
            previous = (relative, position)
        }
        return index
    }
}
