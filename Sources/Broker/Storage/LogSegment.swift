#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One segment of a partition: `<base offset, 20 digits>.log` holding record batches back to
/// back exactly as Kafka stores them, and its sparse `.index`. Mutable fields are guarded by
/// the owning `PartitionLog`'s lock; readers work on a copy.
struct LogSegment: Sendable {
    static let indexIntervalBytes: Int64 = 4096

    let baseOffset: Int64
    let log: FileDescriptor
    /// `nil` for read-only opening.
    let indexFile: FileDescriptor?
    var size: Int64
    /// The offset after the last record in this segment.
    var endOffset: Int64
    var maxTimestamp: Int64
    var index: OffsetIndex
    private var bytesSinceIndexEntry: Int64

    static func fileName(_ baseOffset: Int64, _ suffix: String) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// Creates a new, empty segment.
    static func create(directory: String, baseOffset: Int64) throws -> LogSegment {
        let log = try FileDescriptor(path: directory + "/" + fileName(baseOffset, ".log"), flags: O_RDWR | O_CREAT | O_TRUNC)
        let index = try FileDescriptor(path: directory + "/" + fileName(baseOffset, ".index"), flags: O_RDWR | O_CREAT | O_TRUNC)
        FileSystem.syncDirectory(directory)
        return LogSegment(
            baseOffset: baseOffset, log: log, indexFile: index, size: 0, endOffset: baseOffset,
            maxTimestamp: -1, index: OffsetIndex(), bytesSinceIndexEntry: 0)
    }

    /// What recovery found in a segment's log file.
    struct Recovery {
        var segment: LogSegment
        /// Bytes after the last whole, valid batch (already cut off unless read-only).
        var truncatedBytes: Int64
        var reason: String?
    }

    /// Opens an existing segment. The active (last) segment is scanned batch by batch: every
    /// header, length, CRC and offset is checked, and a torn or corrupt tail is cut at the last
    /// whole batch. Closed segments trust their index and scan only the part after its last entry.
    static func open(directory: String, baseOffset: Int64, isActive: Bool, readOnly: Bool) throws -> Recovery {
        let logPath = directory + "/" + fileName(baseOffset, ".log")
        let indexPath = directory + "/" + fileName(baseOffset, ".index")
        let log = try FileDescriptor(path: logPath, flags: readOnly ? O_RDONLY : O_RDWR)
        let indexFile = readOnly ? nil : try FileDescriptor(path: indexPath, flags: O_RDWR | O_CREAT)
        let fileSize = try log.size()
        var segment = LogSegment(
            baseOffset: baseOffset, log: log, indexFile: indexFile, size: 0, endOffset: baseOffset,
            maxTimestamp: -1, index: OffsetIndex(), bytesSinceIndexEntry: 0)

        var scanFrom: Int64 = 0
        if !isActive, let stored = try? FileSystem.readFile(indexPath), let index = OffsetIndex.decode(stored, logSize: fileSize), index.count > 0 {
            segment.index = index
            let last = index.floorPosition(for: UInt32.max)
            scanFrom = Int64(last.position)
            segment.size = scanFrom
            segment.endOffset = baseOffset + Int64(last.relativeOffset)
        }
        let validEnd: Int64
        var reason: String?
        (validEnd, reason) = try segment.scan(from: scanFrom, fileSize: fileSize, rebuildIndex: scanFrom == 0)
        let truncated = fileSize - validEnd
        if truncated > 0, !readOnly {
            try log.truncate(to: validEnd)
            try log.sync()
        }
        if scanFrom == 0, !readOnly, let indexFile {
            try indexFile.truncate(to: 0)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(segment.index.count * OffsetIndex.entrySize)
            for i in 0..<segment.index.count {
                bytes += OffsetIndex.encodeEntry(relativeOffset: segment.index.relativeOffsets[i], position: segment.index.positions[i])
            }
            try indexFile.write(bytes, at: 0)
        }
        return Recovery(segment: segment, truncatedBytes: truncated, reason: truncated > 0 ? reason : nil)
    }

    /// Walks whole batches from `start`, extending `size`, `endOffset`, `maxTimestamp` and
    /// (optionally) the index. Returns where the valid data ends and why it ends there.
    private mutating func scan(from start: Int64, fileSize: Int64, rebuildIndex: Bool) throws -> (Int64, String?) {
        var position = start
        let chunkSize = 1 << 20
        while position < fileSize {
            let chunk = try log.read(count: Int(min(Int64(chunkSize), fileSize - position)), at: position)
            var consumed = 0
            var problem: String?
            var needMore = 0
            chunk.withUnsafeBytes { raw in
                while consumed < raw.count {
                    let rest = UnsafeRawBufferPointer(rebasing: raw[consumed...])
                    guard rest.count >= RecordBatchHeader.size else { needMore = RecordBatchHeader.size; return }
                    let header: RecordBatchHeader
                    do { header = try RecordBatchHeader.parse(rest) } catch {
                        problem = "invalid batch header at byte \(position + Int64(consumed)): \(error)"
                        return
                    }
                    guard rest.count >= header.totalSize else { needMore = header.totalSize; return }
                    guard RecordBatchHeader.hasValidChecksum(rest, header: header) else {
                        problem = "CRC mismatch in batch at byte \(position + Int64(consumed))"
                        return
                    }
                    guard header.baseOffset == endOffset else {
                        problem = "batch at byte \(position + Int64(consumed)) has offset \(header.baseOffset), expected \(endOffset)"
                        return
                    }
                    if rebuildIndex { noteAppended(header: header, at: size) }
                    size += Int64(header.totalSize)
                    endOffset = header.lastOffset + 1
                    maxTimestamp = max(maxTimestamp, header.maxTimestamp)
                    consumed += header.totalSize
                }
            }
            position += Int64(consumed)
            if let problem { return (position, problem) }
            if needMore > 0 {
                if position + Int64(needMore) > fileSize {
                    return (position, "torn batch at byte \(position): \(fileSize - position) of \(needMore) bytes present")
                }
                if consumed == 0 {
                    // One batch larger than the chunk: read exactly it.
                    let whole = try log.read(count: needMore, at: position)
                    let ok: Bool = whole.withUnsafeBytes { raw in
                        guard let header = try? RecordBatchHeader.parse(raw), RecordBatchHeader.hasValidChecksum(raw, header: header),
                            header.baseOffset == endOffset
                        else { return false }
                        if rebuildIndex { noteAppended(header: header, at: size) }
                        size += Int64(header.totalSize)
                        endOffset = header.lastOffset + 1
                        maxTimestamp = max(maxTimestamp, header.maxTimestamp)
                        return true
                    }
                    if !ok { return (position, "corrupt batch at byte \(position)") }
                    position += Int64(needMore)
                }
            }
        }
        return (position, nil)
    }

    /// Records the batch just placed at `position` in the sparse index when due.
    /// Returns the index entry to persist, if one was added.
    @discardableResult
    mutating func noteAppended(header: RecordBatchHeader, at position: Int64) -> (UInt32, UInt32)? {
        defer { bytesSinceIndexEntry += Int64(header.totalSize) }
        guard index.count == 0 || bytesSinceIndexEntry >= Self.indexIntervalBytes else { return nil }
        bytesSinceIndexEntry = 0
        let entry = (UInt32(header.baseOffset - baseOffset), UInt32(position))
        index.append(relativeOffset: entry.0, position: entry.1)
        return entry
    }

    /// Appends one whole batch (already carrying its final base offset).
    mutating func append(_ batch: UnsafeRawBufferPointer, header: RecordBatchHeader) throws {
        try log.write(batch, at: size)
        if let entry = noteAppended(header: header, at: size), let indexFile {
            try indexFile.write(OffsetIndex.encodeEntry(relativeOffset: entry.0, position: entry.1), at: Int64((index.count - 1) * OffsetIndex.entrySize))
        }
        size += Int64(batch.count)
        endOffset = header.lastOffset + 1
        maxTimestamp = max(maxTimestamp, header.maxTimestamp)
    }

    /// Where to start reading for `offset`: the indexed position at or before it.
    func startPosition(for offset: Int64) -> Int64 {
        Int64(index.floorPosition(for: UInt32(clamping: max(0, offset - baseOffset))).position)
    }

    func removeFiles(directory: String) {
        FileSystem.remove(directory + "/" + Self.fileName(baseOffset, ".log"))
        FileSystem.remove(directory + "/" + Self.fileName(baseOffset, ".index"))
    }
}
