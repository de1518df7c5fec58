import CCrashMarks
import Foundation
import Logging
import Messaging
import SagaDomain
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The poison-record journals of one process: a directory with one small file per consumer,
/// rewritten (without fsync: it must survive the process, not the machine) each time the
/// consumer takes records. A clean stop deletes it; a crash signal marks it (`CCrashMarks`);
/// the next start reads it back into a `PoisonGuard`.
///
/// After a crash the process is cautious: while any consumer has suspects, every consumer of
/// the process handles one record at a time, taking turns through one gate, so that a second
/// crash has exactly one record in hand in the whole process and quarantines that record
/// and no other. Caution ends when the suspects are replayed, or after `cautionLimit`.
public final class PoisonJournals: Sendable {
    public let directory: String
    let cautionLimit: Duration
    private let previous: [String: InHandRecord]
    private let cautionStarted = ContinuousClock.now
    private let suspicious: Mutex<Set<String>>
    private let cautionOver = Atomic<Bool>(false)
    let gate = CautionGate()
    let logger: Logger
    private let lock: Int32

    /// Opens (and creates) the directory; one process at a time (an exclusive `flock`).
    public init(directory: String, cautionLimit: Duration = .seconds(60), logger: Logger) throws {
        self.directory = directory
        self.cautionLimit = cautionLimit
        self.logger = logger
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        lock = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            if lock >= 0 { close(lock) }
            throw BrokerError(.dataDirectoryLocked, "the poison journals in \(directory) are in use by another process; give each process its own --state-dir")
        }
        var previous: [String: InHandRecord] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".inhand") {
            if let bytes = FileManager.default.contents(atPath: directory + "/" + name) {
                previous[String(name.dropLast(".inhand".count))] = Self.parse(Array(bytes))
            }
        }
        self.previous = previous
        let crashed = previous.filter { $0.value.crashed && ($0.value.single != nil || !$0.value.inHand.isEmpty) }
        suspicious = Mutex(Set(crashed.filter { $0.value.single == nil }.keys))
        if !crashed.isEmpty {
            logger.warning(
                "the last run crashed; replaying the records it had in hand one at a time",
                metadata: ["poison.consumers": "\(crashed.keys.sorted().joined(separator: ","))"])
        }
    }

    deinit { close(lock) }

    /// The first free journal directory `BASE/LABEL`, `BASE/LABEL-2`, ...: several instances
    /// of one role on one machine each get their own, and a restarted instance usually gets
    /// back the one it had (the others are still held).
    public static func firstFree(base: String, label: String, logger: Logger) throws -> PoisonJournals {
        var lastError: (any Error)?
        for slot in 1...32 {
            do {
                return try PoisonJournals(directory: base + "/" + (slot == 1 ? label : "\(label)-\(slot)"), logger: logger)
            } catch let error as BrokerError where error.code == .dataDirectoryLocked {
                lastError = error
            }
        }
        throw lastError!
    }

    /// Whether consumers must take one record at a time now.
    var isCautious: Bool {
        if cautionOver.load(ordering: .relaxed) { return false }
        let cautious = suspicious.withLock { !$0.isEmpty }
        if !cautious || ContinuousClock.now - cautionStarted > cautionLimit {
            if cautionOver.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged, cautious {
                logger.warning("caution window over with suspects left (their partitions moved, or were not read); handling normally")
            }
            return false
        }
        return true
    }

    /// The journal of one consumer (its name must be unique in the process).
    public func journal(_ consumer: String) throws -> PoisonJournal {
        try PoisonJournal(path: directory + "/" + consumer + ".inhand", name: consumer, previous: previous[consumer] ?? InHandRecord(), journals: self)
    }

    func noLongerSuspicious(_ consumer: String) {
        suspicious.withLock { _ = $0.remove(consumer) }
    }

    static func parse(_ bytes: [UInt8]) -> InHandRecord {
        var record = InHandRecord(crashed: bytes.first == UInt8(ascii: "C"))
        for line in String(decoding: bytes.dropFirst(), as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            if f.count == 3, f[0] == "setaside", let key = hexDecoded(f[2]) {
                record.setAsideWork.insert(SetAsideWork(topic: f[1], idempotencyKey: key))
                continue
            }
            guard f.count >= 4, let partition = Int(f[2]), let a = Int64(f[3]) else { continue }
            let tp = TopicPartition(f[1], partition)
            switch f[0] {
            case "inhand": if f.count == 5, let b = Int64(f[4]), a <= b { record.inHand[tp] = a...b }
            case "single": record.single = RecordCoordinates(tp, a)
            case "quarantine": record.quarantined.insert(RecordCoordinates(tp, a))
            default: continue
            }
        }
        return record
    }

    static func render(_ record: InHandRecord) -> [UInt8] {
        var text = "\n"
        for (tp, range) in record.inHand.sorted(by: { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }) {
            text += "inhand \(tp.topic) \(tp.partition) \(range.lowerBound) \(range.upperBound)\n"
        }
        if let single = record.single { text += "single \(single.tp.topic) \(single.tp.partition) \(single.offset)\n" }
        for q in record.quarantined { text += "quarantine \(q.tp.topic) \(q.tp.partition) \(q.offset)\n" }
        // The key is hex: it comes from a record's header and may hold spaces or newlines.
        for work in record.setAsideWork { text += "setaside \(work.topic) \(hexEncoded(work.idempotencyKey))\n" }
        return Array(text.utf8)
    }

    static func hexEncoded(_ text: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 2)
        for byte in text.utf8 {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexDecoded(_ hex: String) -> String? {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let high = nibble(chars[i]), let low = nibble(chars[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// One consumer's journal: its `PoisonGuard`, written to its file on every change that
/// matters after a crash.
public final class PoisonJournal: Sendable {
    public let name: String
    private let fd: Int32
    private let path: String
    private let state: Mutex<PoisonGuard>
    /// The file's length (its crash mark included); written only under `state`'s lock.
    private let fileLength = Atomic<Int>(0)
    let journals: PoisonJournals

    init(path: String, name: String, previous: InHandRecord, journals: PoisonJournals) throws {
        self.name = name
        self.path = path
        self.journals = journals
        let guardState = PoisonGuard(previous: previous)
        state = Mutex(guardState)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BrokerError(.io, "cannot open the poison journal \(path): \(String(cString: strerror(errno)))") }
        _ = ccrashmarks_register(fd)
        fileLength.store(max(0, Int(lseek(fd, 0, SEEK_END))), ordering: .relaxed)
        if !guardState.quarantined.isEmpty {
            journals.logger.error("quarantining records that crashed the process twice", metadata: [
                "poison.consumer": "\(name)", "poison.records": "\(guardState.quarantined.map(\.description).sorted().joined(separator: ","))",
            ])
        }
        if !guardState.isSuspicious { journals.noLongerSuspicious(name) }
        _ = pwrite(fd, "R", 1, 0)
        write(guardState)
    }

    /// Whether this consumer takes one record at a time now (the process is cautious).
    public var isCautious: Bool { journals.isCautious }

    /// The guard's verdict on a record about to be handled; written to the journal when it
    /// makes a record's work known as set aside, so its copies stay set aside after a crash.
    public func verdict(_ record: ConsumerRecord, idempotencyKey: String) -> PoisonGuard.Verdict {
        let coordinates = RecordCoordinates(record.topicPartition, record.offset)
        let work = idempotencyKey.isEmpty ? nil : SetAsideWork(topic: record.topic, idempotencyKey: idempotencyKey)
        return state.withLock {
            // The usual case, on every record: nothing was ever set aside.
            if $0.quarantined.isEmpty, $0.setAsideWork.isEmpty { return .handle }
            let known = $0.setAsideWork.count
            let verdict = $0.verdict(coordinates, work: work)
            if $0.setAsideWork.count != known { write($0) }
            return verdict
        }
    }

    /// Each write happens under the lock that made its state: a worker's two lanes take
    /// records at once, and an older state written after a newer one would forget records in
    /// hand.
    public func took(_ records: [ConsumerRecord]) {
        let coordinates = records.map { RecordCoordinates($0.topicPartition, $0.offset) }
        state.withLock {
            $0.took(coordinates)
            write($0)
        }
    }

    public func committed(_ offsets: [TopicPartition: Int64]) {
        guard !offsets.isEmpty else { return }
        state.withLock { $0.committed(offsets) }
    }

    /// Waits for this consumer's turn (one record in hand in the whole process).
    public func takeTurn() async { await journals.gate.acquire() }
    public func endTurn() { journals.gate.release() }

    public func tookAlone(_ record: ConsumerRecord) {
        state.withLock {
            $0.tookAlone(RecordCoordinates(record.topicPartition, record.offset))
            write($0)
        }
    }

    public func handledAlone(_ record: ConsumerRecord) {
        let suspicious = state.withLock { s -> Bool in
            s.handledAlone(RecordCoordinates(record.topicPartition, record.offset))
            write(s)
            return s.isSuspicious
        }
        if !suspicious { journals.noLongerSuspicious(name) }
    }

    /// A clean stop: nothing in hand, nothing to suspect next time.
    public func close() {
        ccrashmarks_unregister(fd)
        Glibc.close(fd)
        unlink(path)
    }

    private func write(_ guardState: PoisonGuard) {
        // Byte 0 is the crash mark: set to 'R' when the journal is opened, then only the
        // crash handler writes it.
        var bytes = PoisonJournals.render(guardState.record)
        let length = bytes.count + 1
        let before = fileLength.load(ordering: .relaxed)
        // Shorter text is padded with spaces to the file's length, which read as nothing,
        // rather than cut off: shrinking a file is a metadata change the file system
        // journals, and this runs at every poll (1 % of the CPU of a run of lone orders).
        // A file grown past `paddedLengthLimit` is cut back.
        let pad = length < before && before <= Self.paddedLengthLimit
        if pad { bytes += repeatElement(UInt8(ascii: " "), count: before - length) }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 1) }
        if !pad {
            if length < before { _ = ftruncate(fd, off_t(length)) }
            fileLength.store(length, ordering: .relaxed)
        }
    }

    static let paddedLengthLimit = 64 << 10
}

/// One turn at a time across the consumers of a cautious process.
final class CautionGate: Sendable {
    private struct State {
        var held = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if !state.held {
                    state.held = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.held = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}

/// The record set aside on `<topic>.poison`: the original key, value and headers, plus where
/// it came from and why.
public enum PoisonRecord {
    public static let suffix = ".poison"
    public static let errorClass = "PoisonRecord"

    public static func topic(for topic: String) -> String { topic + suffix }

    public static func make(_ record: ConsumerRecord, reason: String, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> ProducerRecord {
        var headers = record.headers.filter { ![SagaHeader.originalTopic, SagaHeader.originalPartition, SagaHeader.originalOffset, SagaHeader.errorClass, SagaHeader.errorMessage, SagaHeader.failedAt].contains($0.key) }
        headers += [
            RecordHeader(SagaHeader.originalTopic, record.topic),
            RecordHeader(SagaHeader.originalPartition, String(record.partition)),
            RecordHeader(SagaHeader.originalOffset, String(record.offset)),
            RecordHeader(SagaHeader.errorClass, errorClass),
            RecordHeader(SagaHeader.errorMessage, reason),
            RecordHeader(SagaHeader.failedAt, String(now)),
        ]
        return ProducerRecord(topic: topic(for: record.topic), key: record.key, value: record.value, headers: headers)
    }

    /// Creates `<topic>.poison` (one partition) when it is not there yet.
    public static func ensureTopics(_ records: [ProducerRecord], on broker: any MessageBroker) async {
        for name in Set(records.map(\.topic)) where name.hasSuffix(suffix) {
            do {
                try await broker.createTopic(TopicSpec(name: name, partitions: 1))
            } catch let error as BrokerError where error.code == .topicExists {
            } catch {
                // The produce that follows reports it, and is retried.
            }
        }
    }
}
