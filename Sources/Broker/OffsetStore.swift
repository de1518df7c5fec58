#if canImport(Glibc)
import Messaging
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Committed group offsets, durable in one append-only file of checksummed entries
/// (`[length u32][crc32c u32][group, topic, partition, offset]`). Replayed on open (latest
/// entry wins, a torn tail is cut); rewritten compactly once it grows past a threshold.
final class OffsetStore: Syncable {
    struct Key: Hashable, Sendable {
        var group: String
        var tp: TopicPartition
    }

    private struct State {
        var file: FileDescriptor?
        var size: Int64
        var entries: Int
        var committed: [Key: Int64]
    }

    let path: String
    let readOnly: Bool
    private let compactAfterBytes: Int64
    private let state: Mutex<State>

    init(path: String, readOnly: Bool, compactAfterBytes: Int64 = 32 << 20) throws {
        self.path = path
        self.readOnly = readOnly
        self.compactAfterBytes = compactAfterBytes
        var committed: [Key: Int64] = [:]
        var validEnd: Int64 = 0
        var entries = 0
        let existed = FileSystem.exists(path)
        let bytes = existed ? try FileSystem.readFile(path) : []
        bytes.withUnsafeBytes { raw in
            var position = 0
            while position + 8 <= raw.count {
                var r = ByteReader(raw, position: position)
                guard let length = try? r.readBigEndian(UInt32.self), let crc = try? r.readBigEndian(UInt32.self),
                    length < 1 << 20, position + 8 + Int(length) <= raw.count
                else { break }
                let payload = UnsafeRawBufferPointer(rebasing: raw[(position + 8)..<(position + 8 + Int(length))])
                guard CRC32C.checksum(payload) == crc, let (key, offset) = Self.decode(payload) else { break }
                committed[key] = offset >= 0 ? offset : nil
                position += 8 + Int(length)
                entries += 1
            }
            validEnd = Int64(position)
        }
        var file: FileDescriptor?
        if !readOnly {
            let f = try FileDescriptor(path: path, flags: O_RDWR | O_CREAT)
            // A new log's directory entry is made durable before any commit is acknowledged
            // into it: fsyncing the file alone does not keep its name through a power loss.
            if !existed { FileSystem.syncDirectory(path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ".") }
            if validEnd < Int64(bytes.count) { try f.truncate(to: validEnd) }
            file = f
        }
        state = Mutex(State(file: file, size: validEnd, entries: entries, committed: committed))
    }

    func committed(group: String, _ tp: TopicPartition) -> Int64? {
        state.withLock { $0.committed[Key(group: group, tp: tp)] }
    }

    func committed(group: String) -> [TopicPartition: Int64] {
        state.withLock { state in
            var result: [TopicPartition: Int64] = [:]
            for (key, offset) in state.committed where key.group == group { result[key.tp] = offset }
            return result
        }
    }

    var groups: Set<String> { state.withLock { Set($0.committed.keys.map(\.group)) } }

    /// Appends the commits (not yet fsynced: the caller decides per the fsync policy).
    func append(group: String, offsets: [TopicPartition: Int64]) throws {
        guard !readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        var bytes: [UInt8] = []
        for (tp, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            bytes += Self.entry(Key(group: group, tp: tp), offset)
        }
        try state.withLock { (state) in
            try write(bytes, &state)
            state.entries += offsets.count
            for (tp, offset) in offsets { state.committed[Key(group: group, tp: tp)] = offset }
            if state.size > compactAfterBytes && state.entries > 4 * state.committed.count {
                // Compaction only saves space: when it fails (a full disk), these commits are
                // in the log all the same, and the next append tries again.
                try? compact(&state)
            }
        }
    }

    /// Appends entries at the end of the log. A write that fails is cut off again: left past
    /// the end, a part of it could replay at the next open as whole entries.
    private func write(_ bytes: [UInt8], _ state: inout State) throws {
        // After a compaction that replaced the file but could not reopen it.
        if state.file == nil { state.file = try FileDescriptor(path: path, flags: O_RDWR) }
        do {
            try state.file!.write(bytes, at: state.size)
        } catch {
            try? state.file!.truncate(to: state.size)
            throw error
        }
        state.size += Int64(bytes.count)
    }

    /// Forgets, durably, every group's offsets in the partitions `gone` picks (of a deleted
    /// topic): a topic made again under its name starts empty, and old offsets would make
    /// its groups skip its first records. Written as entries with offset -1, which no commit
    /// can carry.
    func forget(where gone: (TopicPartition) -> Bool) throws {
        guard !readOnly else { throw BrokerError(.readOnly, "the data directory is open read-only") }
        let file = try state.withLock { state -> FileDescriptor? in
            let keys = state.committed.keys.filter { gone($0.tp) }
            guard !keys.isEmpty else { return nil }
            var bytes: [UInt8] = []
            for key in keys { bytes += Self.entry(key, -1) }
            try write(bytes, &state)
            state.entries += keys.count
            for key in keys { state.committed[key] = nil }
            return state.file
        }
        try file?.sync()
    }

    /// Moves back, durably, every committed offset past its partition's end (`ends`, every
    /// partition there is), and forgets the offsets of partitions that are gone (topics
    /// deleted by a version that kept their offsets).
    func reconcile(withEnds ends: [TopicPartition: Int64]) throws {
        try forget { ends[$0] == nil }
        let past = state.withLock { state in
            state.committed.compactMap { key, offset -> (Key, Int64)? in
                guard let end = ends[key.tp], offset > end else { return nil }
                return (key, end)
            }
        }
        guard !past.isEmpty else { return }
        for (group, entries) in Dictionary(grouping: past, by: \.0.group) {
            try append(group: group, offsets: Dictionary(entries.map { ($0.0.tp, $0.1) }, uniquingKeysWith: min))
        }
        try sync()
    }

    /// Rewrites the log with one entry per partition. Until the rewrite is in place the old
    /// file stays open and in use, so a failure leaves the log as it was (it once closed the
    /// file first, and the next commit after a failed rewrite crashed the process).
    private func compact(_ state: inout State) throws {
        var bytes: [UInt8] = []
        for (key, offset) in state.committed { bytes += Self.entry(key, offset) }
        try FileSystem.writeAtomically(bytes, to: path)
        // The old file has left the directory: never append to it again, even if the reopen
        // below fails (the next append reopens).
        state.file = nil
        state.size = Int64(bytes.count)
        state.entries = state.committed.count
        state.file = try FileDescriptor(path: path, flags: O_RDWR)
    }

    func sync() throws {
        let file = state.withLock { $0.file }
        try file?.sync()
    }

    func didSync(upTo mark: Int64) {}

    private static func entry(_ key: Key, _ offset: Int64) -> [UInt8] {
        var w = ByteWriter(capacity: 32 + key.group.utf8.count + key.tp.topic.utf8.count)
        w.writeInt16(Int16(key.group.utf8.count))
        w.write(key.group.utf8)
        w.writeInt16(Int16(key.tp.topic.utf8.count))
        w.write(key.tp.topic.utf8)
        w.writeInt32(Int32(key.tp.partition))
        w.writeInt64(offset)
        var framed = ByteWriter(capacity: w.bytes.count + 8)
        framed.writeBigEndian(UInt32(w.bytes.count))
        framed.writeBigEndian(CRC32C.checksum(w.bytes))
        framed.write(w.bytes)
        return framed.bytes
    }

    private static func decode(_ payload: UnsafeRawBufferPointer) -> (Key, Int64)? {
        var r = ByteReader(payload)
        guard let groupLength = try? r.readInt16(), let group = try? r.readBytes(Int(groupLength)),
            let topicLength = try? r.readInt16(), let topic = try? r.readBytes(Int(topicLength)),
            let partition = try? r.readInt32(), let offset = try? r.readInt64()
        else { return nil }
        let key = Key(group: String(decoding: group, as: UTF8.self), tp: TopicPartition(String(decoding: topic, as: UTF8.self), Int(partition)))
        return (key, offset)
    }
}
