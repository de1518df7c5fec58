import Messaging

/// Where one record sits: topic, partition, offset.
public struct RecordCoordinates: Hashable, Sendable, CustomStringConvertible {
    public var tp: TopicPartition
    public var offset: Int64

    public init(_ tp: TopicPartition, _ offset: Int64) {
        self.tp = tp
        self.offset = offset
    }

    public var description: String { "\(tp.topic)/\(tp.partition)/\(offset)" }

    /// Read back from `description` (as the `source-position` header and `submitted.source`
    /// carry it); `nil` for anything else. Topic names hold no `/`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, let partition = Int(parts[1]), let offset = Int64(parts[2]) else { return nil }
        self.init(TopicPartition(String(parts[0]), partition), offset)
    }
}

/// A unit of work as the step sees it: a topic and the idempotency key its records carry.
/// Every copy of a record (an at-least-once producer publishes again what it cannot know was
/// published) and every attempt on the same topic is the same work, and crashes the same way.
public struct SetAsideWork: Hashable, Sendable {
    public var topic: String
    public var idempotencyKey: String

    public init(topic: String, idempotencyKey: String) {
        self.topic = topic
        self.idempotencyKey = idempotencyKey
    }
}

/// What a consumer's journal said when the process last ended, read back at the next start.
public struct InHandRecord: Equatable, Sendable {
    /// `true` when the process died of a crash signal (a trap, a bad pointer), `false` when it
    /// was killed (SIGKILL, power loss) or the journal was left by a clean stop.
    public var crashed = false
    /// Uncommitted records taken, per partition: first and last offset.
    public var inHand: [TopicPartition: ClosedRange<Int64>] = [:]
    /// The one record in hand while the consumer was replaying suspects one at a time.
    public var single: RecordCoordinates?
    /// Records already set aside and not yet committed past.
    public var quarantined: Set<RecordCoordinates> = []
    /// The work of records set aside, kept until the process stops cleanly: its copies are
    /// set aside too.
    public var setAsideWork: Set<SetAsideWork> = []

    public init(crashed: Bool = false, inHand: [TopicPartition: ClosedRange<Int64>] = [:], single: RecordCoordinates? = nil, quarantined: Set<RecordCoordinates> = [], setAsideWork: Set<SetAsideWork> = []) {
        self.crashed = crashed
        self.inHand = inHand
        self.single = single
        self.quarantined = quarantined
        self.setAsideWork = setAsideWork
    }
}

/// Poison-record bookkeeping of one consumer, as a plain state machine (no I/O): which
/// records were in hand at a crash (suspects, replayed one at a time), which record was in
/// hand at two consecutive crashes (quarantined: set aside on `<topic>.poison`, and the
/// partition goes on), and what is in hand now, for the journal.
///
/// The first crash names a range (every uncommitted record a consumer had taken); the replay
/// after it takes one record at a time, so a second crash names exactly one record.
///
/// A quarantined record's work (`SetAsideWork`) is remembered, and a copy of it found later
/// is a duplicate of a record set aside: it is not handled either. Without that, a copy
/// published again by an upstream producer that replayed its own records after the crash
/// would crash the process a third time.
public struct PoisonGuard: Sendable {
    public private(set) var suspects: [TopicPartition: ClosedRange<Int64>] = [:]
    public private(set) var quarantined: Set<RecordCoordinates>
    public private(set) var setAsideWork: Set<SetAsideWork>
    public private(set) var inHand: [TopicPartition: ClosedRange<Int64>] = [:]
    public private(set) var single: RecordCoordinates?

    /// What to do with a record about to be handled.
    public enum Verdict: Equatable, Sendable {
        case handle
        /// The record crashed the process twice: set it aside.
        case setAside
        /// A copy of work already set aside: its outcome was routed with the original.
        case copyOfSetAside
    }

    public init(previous: InHandRecord) {
        quarantined = previous.quarantined
        setAsideWork = previous.setAsideWork
        guard previous.crashed else { return }
        if let single = previous.single {
            // In hand, alone, at the second crash in a row: it is the record that kills us.
            quarantined.insert(single)
        } else {
            suspects = previous.inHand
        }
    }

    /// Whether this consumer still has suspects to replay one at a time.
    public var isSuspicious: Bool { !suspects.isEmpty }

    public func isQuarantined(_ record: RecordCoordinates) -> Bool { quarantined.contains(record) }

    /// The verdict on a record with the work `work` (nil: a record without an idempotency
    /// key, known only by where it sits). A record set aside makes its work's copies
    /// `copyOfSetAside` from then on.
    public mutating func verdict(_ record: RecordCoordinates, work: SetAsideWork?) -> Verdict {
        if quarantined.contains(record) {
            if let work { setAsideWork.insert(work) }
            return .setAside
        }
        if let work, setAsideWork.contains(work) { return .copyOfSetAside }
        return .handle
    }

    /// Records taken from the broker (before any is handled).
    public mutating func took(_ records: [RecordCoordinates]) {
        for record in records {
            if let range = inHand[record.tp] {
                inHand[record.tp] = min(range.lowerBound, record.offset)...max(range.upperBound, record.offset)
            } else {
                inHand[record.tp] = record.offset...record.offset
            }
        }
    }

    /// One record taken alone, while replaying suspects.
    public mutating func tookAlone(_ record: RecordCoordinates) {
        took([record])
        single = record
    }

    /// The record taken alone is handled and durable: it is not the poison.
    public mutating func handledAlone(_ record: RecordCoordinates) {
        if single == record { single = nil }
        if let range = suspects[record.tp], record.offset >= range.upperBound { suspects[record.tp] = nil }
    }

    /// Offsets committed (the next offset to read per partition).
    public mutating func committed(_ offsets: [TopicPartition: Int64]) {
        for (tp, next) in offsets {
            if let range = inHand[tp] {
                inHand[tp] = next > range.upperBound ? nil : max(next, range.lowerBound)...range.upperBound
            }
            quarantined = quarantined.filter { $0.tp != tp || $0.offset >= next }
            if let range = suspects[tp], next > range.upperBound { suspects[tp] = nil }
        }
    }

    /// Gives up replaying (partitions that moved to another member, or the caution window
    /// passed): the rest is handled normally again.
    public mutating func forgetSuspects() { suspects.removeAll() }

    /// What the journal must hold now.
    public var record: InHandRecord { InHandRecord(crashed: false, inHand: inHand, single: single, quarantined: quarantined, setAsideWork: setAsideWork) }
}
