import Logging
import Messaging
import NIOCore
import Synchronization

/// One topic-partition on disk: a folder of segments, appended under a lock, read lock-free
/// with `pread`. Records become visible to consumers at the high watermark, which under a
/// durable fsync policy only moves once they are on disk, so no consumer ever acts on a
/// record a crash could take back.
final class PartitionLog: Syncable {
    struct Configuration: Sendable {
        var segmentBytes: Int64
        var retentionBytes: Int64?
        var retentionMilliseconds: Int64?
        var visibleOnAppend: Bool
        var readOnly: Bool
    }

    struct State {
        var segments: [LogSegment]
        var logEndOffset: Int64
        var highWatermark: Int64
        var waiters: [ObjectIdentifier: Waiter] = [:]
    }

    let topicPartition: TopicPartition
    let directory: String
    let configuration: Configuration
    private let state: Mutex<State>
    /// The high watermark, readable without the lock: pollers check it before reading.
    private let visibleEnd: Atomic<Int64>

    private init(topicPartition: TopicPartition, directory: String, configuration: Configuration, state: State) {
        self.topicPartition = topicPartition
        self.directory = directory
        self.configuration = configuration
        self.visibleEnd = Atomic(state.highWatermark)
        self.state = Mutex(state)
    }

    /// The offset below which records are visible to consumers (lock-free).
    var highWatermark: Int64 { visibleEnd.load(ordering: .acquiring) }

    /// Opens (creating if needed) the partition folder and recovers its segments.
    static func open(
        topicPartition: TopicPartition, directory: String, configuration: Configuration, logger: Logger
    ) throws -> PartitionLog {
        if !configuration.readOnly { try FileSystem.createDirectory(directory) }
        let bases = FileSystem.list(directory)
            .filter { $0.hasSuffix(".log") }
            .compactMap { Int64($0.dropLast(4)) }
            .sorted()
        var segments: [LogSegment] = []
        for (i, base) in bases.enumerated() {
            let isActive = i == bases.count - 1
            let recovery = try LogSegment.open(directory: directory, baseOffset: base, isActive: isActive, readOnly: configuration.readOnly)
            if recovery.truncatedBytes > 0 {
                logger.warning(
                    "recovered a damaged segment tail",
                    metadata: [
                        "kafka.topic": "\(topicPartition.topic)", "kafka.partition": "\(topicPartition.partition)",
                        "segment.base_offset": "\(base)", "recovery.truncated_bytes": "\(recovery.truncatedBytes)",
                        "recovery.reason": "\(recovery.reason ?? "")", "recovery.read_only": "\(configuration.readOnly)",
                    ])
            }
            segments.append(recovery.segment)
        }
        if segments.isEmpty {
            if configuration.readOnly {
                throw BrokerError(.unknownTopic, "partition \(topicPartition) has no data folder at \(directory)")
            }
            segments.append(try LogSegment.create(directory: directory, baseOffset: 0))
        }
        let end = segments.last!.endOffset
        return PartitionLog(
            topicPartition: topicPartition, directory: directory, configuration: configuration,
            state: State(segments: segments, logEndOffset: end, highWatermark: end))
    }

    var offsets: (begin: Int64, end: Int64) {
        state.withLock { ($0.segments.first!.baseOffset, $0.highWatermark) }
    }

    var logEndOffset: Int64 { state.withLock { $0.logEndOffset } }

    // MARK: Append

    /// Appends one encoded batch, patching its base offset (outside the CRC) to the next
    /// offset. Returns that base offset.
    func append(batch: inout [UInt8]) throws -> Int64 {
        guard !configuration.readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        let header = try batch.withUnsafeBytes { (raw) in try RecordBatchHeader.parse(raw) }
        guard header.totalSize == batch.count else {
            throw BrokerError(.corruptRecord, "batch length field says \(header.totalSize) bytes, got \(batch.count)")
        }
        let (base, wake): (Int64, [Waiter]) = try state.withLock { (state) in
            let base = state.logEndOffset
            RecordBatchCodec.patchBaseOffset(base, in: &batch)
            var patched = header
            patched.baseOffset = base
            let last = state.segments.count - 1
            try batch.withUnsafeBytes { (raw) in try state.segments[last].append(raw, header: patched) }
            state.logEndOffset = patched.lastOffset + 1
            if state.segments[last].size >= configuration.segmentBytes {
                try roll(&state)
            }
            guard configuration.visibleOnAppend else { return (base, []) }
            state.highWatermark = state.logEndOffset
            visibleEnd.store(state.highWatermark, ordering: .releasing)
            return (base, takeWaiters(&state))
        }
        for waiter in wake { waiter.signal() }
        return base
    }

    private func roll(_ state: inout State) throws {
        let old = state.segments[state.segments.count - 1]
        try old.log.sync()
        try old.indexFile?.sync()
        state.segments.append(try LogSegment.create(directory: directory, baseOffset: state.logEndOffset))
        applyRetention(&state, now: UnixClock.nowMillis())
    }

    private func takeWaiters(_ state: inout State) -> [Waiter] {
        guard !state.waiters.isEmpty else { return [] }
        let waiters = Array(state.waiters.values)
        state.waiters.removeAll(keepingCapacity: true)
        return waiters
    }

    // MARK: Durability

    func sync() throws {
        let active = state.withLock { $0.segments[$0.segments.count - 1].log }
        try active.sync()
    }

    func didSync(upTo mark: Int64) {
        let wake: [Waiter] = state.withLock { state in
            guard mark > state.highWatermark else { return [] }
            state.highWatermark = min(mark, state.logEndOffset)
            visibleEnd.store(state.highWatermark, ordering: .releasing)
            return takeWaiters(&state)
        }
        for waiter in wake { waiter.signal() }
    }

    // MARK: Read

    /// Whole batches holding offsets from `offset` on, up to about `maxBytes` (at least one
    /// batch), never past the high watermark.
    struct ReadResult {
        var bytes: [UInt8]
        var highWatermark: Int64
        var logStartOffset: Int64
    }

    /// A read's whole batches as slices of the chunks read from disk, not copied: the wire
    /// door hands them to the socket as they are (a fetch used to copy each batch three times).
    struct ReadParts {
        var parts: [ByteBuffer] = []
        var highWatermark: Int64
        var logStartOffset: Int64
        var count: Int { parts.byteCount }
    }

    func read(from offset: Int64, maxBytes: Int) throws -> ReadResult {
        let read = try readParts(from: offset, maxBytes: maxBytes)
        return ReadResult(bytes: read.parts.joinedBytes(), highWatermark: read.highWatermark, logStartOffset: read.logStartOffset)
    }

    func readParts(from offset: Int64, maxBytes: Int) throws -> ReadParts {
        let (segment, highWatermark, logStart): (LogSegment?, Int64, Int64) = try state.withLock { (state) in
            let start = state.segments[0].baseOffset
            guard offset >= start, offset <= state.logEndOffset else {
                throw BrokerError(.offsetOutOfRange, "offset \(offset) is outside \(topicPartition)'s range \(start)..<\(state.logEndOffset)")
            }
            guard offset < state.highWatermark else { return (nil, state.highWatermark, start) }
            var low = 0
            var high = state.segments.count - 1
            while low < high {
                let mid = (low + high + 1) / 2
                if state.segments[mid].baseOffset <= offset { low = mid } else { high = mid - 1 }
            }
            return (state.segments[low], state.highWatermark, start)
        }
        var output = ReadParts(highWatermark: highWatermark, logStartOffset: logStart)
        guard let segment else { return output }
        var taken = 0  // the bytes of `output.parts`
        var position = segment.startPosition(for: offset)
        while position < segment.size {
            let want = Int(min(Int64(max(maxBytes - taken, RecordBatchHeader.size)) + LogSegment.indexIntervalBytes, segment.size - position))
            let chunk = try segment.log.readBuffer(count: want, at: position)
            var consumed = 0
            var firstIncomplete = 0
            var reachedEnd = false
            // The wanted batches of a chunk are contiguous: from the first that reaches
            // `offset` to the last whole one within `maxBytes`.
            var wanted: Range<Int>?
            try chunk.withUnsafeReadableBytes { (raw) in
                while consumed + RecordBatchHeader.size <= raw.count {
                    let header = try RecordBatchHeader.parse(UnsafeRawBufferPointer(rebasing: raw[consumed...]))
                    if header.baseOffset >= highWatermark {
                        reachedEnd = true
                        return
                    }
                    if consumed + header.totalSize > raw.count {
                        firstIncomplete = header.totalSize
                        return
                    }
                    if header.lastOffset >= offset {
                        let size = taken + (wanted?.count ?? 0)
                        if size > 0, size + header.totalSize > maxBytes {
                            reachedEnd = true
                            return
                        }
                        wanted = (wanted?.lowerBound ?? consumed)..<(consumed + header.totalSize)
                    }
                    consumed += header.totalSize
                }
            }
            if let wanted {
                output.parts.append(chunk.getSlice(at: chunk.readerIndex + wanted.lowerBound, length: wanted.count)!)
                taken += wanted.count
            }
            position += Int64(consumed)
            if reachedEnd || taken >= maxBytes { break }
            if consumed == 0 {
                guard firstIncomplete > 0 else { break }
                // A batch larger than what was read: fetch it whole.
                let whole = try segment.log.readBuffer(count: firstIncomplete, at: position)
                guard whole.readableBytes == firstIncomplete else { break }
                let lastOffset = try whole.withUnsafeReadableBytes { (raw) in try RecordBatchHeader.parse(raw).lastOffset }
                if lastOffset >= offset {
                    // Past the limit only as the first batch, as everywhere else.
                    if taken > 0, taken + firstIncomplete > maxBytes { break }
                    output.parts.append(whole)
                    taken += firstIncomplete
                }
                position += Int64(firstIncomplete)
                if taken >= maxBytes { break }
            }
        }
        return output
    }

    /// Deletes every segment and the folder (the topic was deleted); waiters wake.
    func removeFiles() {
        let wake: [Waiter] = state.withLock { state in
            for segment in state.segments { segment.removeFiles(directory: directory) }
            return takeWaiters(&state)
        }
        FileSystem.removeEmptyDirectory(directory)
        for waiter in wake { waiter.signal() }
    }

    /// Registers a waiter woken when the high watermark next moves.
    func addWaiter(_ waiter: Waiter) {
        state.withLock { $0.waiters[ObjectIdentifier(waiter)] = waiter }
    }

    func removeWaiter(_ waiter: Waiter) {
        state.withLock { _ = $0.waiters.removeValue(forKey: ObjectIdentifier(waiter)) }
    }

    // MARK: Retention

    /// Deletes the oldest closed segments beyond the size limit or older than the age limit.
    /// Returns how many segments were deleted.
    @discardableResult
    func enforceRetention(now: Int64) -> Int {
        guard !configuration.readOnly else { return 0 }
        return state.withLock { applyRetention(&$0, now: now) }
    }

    @discardableResult
    private func applyRetention(_ state: inout State, now: Int64) -> Int {
        var deleted = 0
        var total = state.segments.reduce(Int64(0)) { $0 + $1.size }
        while state.segments.count > 1 {
            let oldest = state.segments[0]
            let tooBig = configuration.retentionBytes.map { total - oldest.size >= $0 } ?? false
            let tooOld = configuration.retentionMilliseconds.map { oldest.maxTimestamp >= 0 && oldest.maxTimestamp < now - $0 } ?? false
            guard tooBig || tooOld else { break }
            // Readers that already hold the segment keep reading the unlinked file.
            oldest.removeFiles(directory: directory)
            state.segments.removeFirst()
            total -= oldest.size
            deleted += 1
        }
        return deleted
    }

    var segmentCount: Int { state.withLock { $0.segments.count } }
}

extension Array where Element == ByteBuffer {
    /// The readable bytes of all the parts.
    public var byteCount: Int { reduce(0) { $0 + $1.readableBytes } }

    /// The parts in one array, allocated once.
    public func joinedBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(byteCount)
        for part in self { part.withUnsafeReadableBytes { bytes.append(contentsOf: $0) } }
        return bytes
    }
}
