import Messaging
import SagaDomain

/// The worker runtime's bookkeeping, as a plain state machine: no tasks, no I/O, the clock
/// passed in. `WorkerRuntime` owns one under a lock and carries out what it returns.
///
/// A consumed message is received and then either starts (an attempt for the runtime to
/// launch), waits behind a message of the same order (one order is never handled twice at
/// once), waits for a free handler slot (at most `concurrency` run; VIP messages go first), or
/// is decided already (an outcome recorded before, a quarantined record). An attempt ends
/// with an outcome, or is marked overdue past its timeout or heartbeat and then ends with
/// that failure. Finished outcomes are taken by the flusher in batches; once flushed, their
/// offsets become committable, each partition up to its first unflushed message.
public struct WorkerPipeline<Work: Sendable>: Sendable {
    public enum Outcome: Sendable {
        /// The handler's work, to apply in the store.
        case work(Work)
        case failed(StepFailure)
        /// Decided already: publish these records.
        case recorded([ProducerRecord])
    }

    public struct Finished: Sendable {
        public var token: Int
        public var message: InboundMessage
        public var outcome: Outcome
        /// The outcome of an attempt (not one decided before, such as a recorded outcome).
        public var attempted = false
    }

    /// An attempt the runtime must launch now.
    public struct Launch: Sendable {
        public var token: Int
        public var message: InboundMessage
    }

    struct Running: Sendable {
        var message: InboundMessage
        var deadline: ContinuousClock.Instant
        /// Set when the attempt is overdue: the failure it ends with, whatever it returns.
        var cancelReason: StepFailure?
    }

    public let concurrency: Int
    /// One message per order at a time. Off for in-line handlers, whose messages each finish
    /// before the next is received, so no order ever waits and no turn needs keeping.
    public let oneMessagePerOrder: Bool
    public let timeoutSeconds: Double
    public let heartbeatSeconds: Double?
    private var ledger = PipelineLedger()
    private var nextToken = 0
    private var queued: [Int: (message: InboundMessage, known: Outcome?)] = [:]
    private var running: [Int: Running] = [:]
    private var readyVIP = FIFO<Launch>()
    private var readyStandard = FIFO<Launch>()
    private var finished: [Finished] = []
    /// VIP outcomes, flushed apart from standard ones (`takeFinished`).
    private var finishedVIP: [Finished] = []
    private var firstVIPFinishedAt: ContinuousClock.Instant?
    /// VIP outcomes taken by a flusher and not yet flushed (or handed back).
    private var flushingVIP = 0
    public private(set) var isStopping = false

    public init(concurrency: Int, timeoutSeconds: Double, heartbeatSeconds: Double? = nil, oneMessagePerOrder: Bool = true) {
        self.concurrency = max(1, concurrency)
        self.oneMessagePerOrder = oneMessagePerOrder
        self.timeoutSeconds = timeoutSeconds
        self.heartbeatSeconds = heartbeatSeconds
    }

    /// Messages taken and not yet flushed (or handed back).
    public var taken: Int { ledger.taken }
    /// Of those, the ones taken from the VIP lane (`InboundMessage.lane`): that lane has a
    /// budget of its own, so a full pipeline of standard work never keeps a VIP message from
    /// being taken, and VIP work never takes more than its budget.
    public private(set) var takenVIP = 0
    public var runningCount: Int { running.count }
    /// Nothing running and nothing waiting behind a running message of its order.
    public var isIdle: Bool { running.isEmpty && queued.isEmpty }
    public var hasFinished: Bool { !finished.isEmpty || !finishedVIP.isEmpty }
    public func isRunning(_ token: Int) -> Bool { running[token] != nil }

    /// One order's messages are handled one at a time; a message without an order is its own.
    static func orderKey(_ message: InboundMessage) -> String {
        message.orderID.isEmpty ? "\(message.record.topic)/\(message.record.offset)" : message.orderID
    }

    /// A consumed message; `known` is its outcome when that is decided already. Returns the
    /// attempt to launch now, if it may start and a slot is free.
    public mutating func receive(_ message: InboundMessage, known: Outcome?, now: ContinuousClock.Instant) -> [Launch] {
        let token = nextToken
        nextToken += 1
        if message.lane == .vip { takenVIP += 1 }
        var startsNow = true
        if oneMessagePerOrder {
            startsNow = ledger.receive(.init(tp: message.topicPartition, offset: message.record.offset, orderKey: Self.orderKey(message)), token: token)
        } else {
            ledger.receiveInTurn(message.topicPartition, message.record.offset)
        }
        guard startsNow else {
            queued[token] = (message, known)
            return []
        }
        if let known { return complete(Finished(token: token, message: message, outcome: known), now: now) }
        return start(Launch(token: token, message: message), now: now).map { [$0] } ?? []
    }

    /// An attempt returned `outcome` (`handedBack`: it was cancelled at shutdown and has
    /// none; it stays uncommitted and is redelivered later). Returns the attempts to launch:
    /// the next ready message in the freed slot, the next message of the same order.
    public mutating func attemptEnded(_ token: Int, outcome: Outcome, handedBack: Bool = false, now: ContinuousClock.Instant) -> [Launch] {
        guard let attempt = running.removeValue(forKey: token) else { return [] }
        var launches: [Launch] = []
        if !isStopping, let next = readyVIP.popFirst() ?? readyStandard.popFirst() {
            running[next.token] = Running(message: next.message, deadline: deadline(from: now))
            launches.append(next)
        }
        if let reason = attempt.cancelReason {
            launches += complete(Finished(token: token, message: attempt.message, outcome: .failed(reason), attempted: true), now: now)
        } else if handedBack {
            ledger.abandoned()
            if attempt.message.lane == .vip { takenVIP -= 1 }
        } else {
            launches += complete(Finished(token: token, message: attempt.message, outcome: outcome, attempted: true), now: now)
        }
        return launches
    }

    /// Marks the attempts past their timeout, or silent for longer than `heartbeat_seconds`
    /// (`silence` gives the seconds since a running attempt's last beat), and returns them for
    /// the runtime to cancel. When both have expired (the check ran late), the one that
    /// expired first is the cause.
    public mutating func markOverdue(now: ContinuousClock.Instant, silence: (Int) -> Double?) -> [(token: Int, failure: StepFailure)] {
        var overdue: [(token: Int, failure: StepFailure)] = []
        for (token, attempt) in running where attempt.cancelReason == nil {
            let heartbeatOverdue = heartbeatSeconds.flatMap { limit in silence(token).map { $0 - limit } } ?? -1
            let timeoutOverdue = now >= attempt.deadline ? Self.seconds(now - attempt.deadline) : -1
            let failure: StepFailure
            if heartbeatOverdue > 0, heartbeatOverdue >= timeoutOverdue, let heartbeatSeconds {
                failure = StepFailure(StepFailure.heartbeatTimeoutClass, "no heartbeat for heartbeat_seconds \(heartbeatSeconds)")
            } else if timeoutOverdue >= 0 {
                failure = StepFailure(StepFailure.timeoutClass, "no result within timeout_seconds \(timeoutSeconds)")
            } else {
                continue
            }
            running[token]!.cancelReason = failure
            overdue.append((token, failure))
        }
        return overdue
    }

    /// Up to `max` finished outcomes of one lane, oldest first, for one flush. A batch never
    /// mixes lanes: a VIP result is applied and published in a transaction of a few records,
    /// by the VIP lane's own flusher, never padded with a thousand standard ones. A standard
    /// flusher with no standard outcome waiting takes VIP ones, so a flood of VIP work is not
    /// left to one flusher. (In-line pipelines keep one queue, in consumption order.)
    public mutating func takeFinished(max: Int, lane: Priority = .standard) -> [Finished] {
        if lane == .vip || finished.isEmpty {
            let take = Array(finishedVIP.prefix(max))
            finishedVIP.removeFirst(take.count)
            flushingVIP += take.count
            if finishedVIP.isEmpty { firstVIPFinishedAt = nil }
            return take
        }
        let take = Array(finished.prefix(max))
        finished.removeFirst(take.count)
        return take
    }

    /// Which flushers have something to take: the standard ones for standard outcomes, and
    /// for VIP ones only while the VIP lane's flusher is busy with a batch (a flood of VIP
    /// work is then not left to it alone, `takeFinished`); the VIP lane's for VIP outcomes.
    public var flushersToWake: (standard: Bool, vip: Bool) {
        (!finished.isEmpty || (!finishedVIP.isEmpty && flushingVIP > 0), !finishedVIP.isEmpty)
    }

    /// When the finished VIP outcomes should leave: at once when no other VIP message in hand
    /// is still being handled (nothing more would join them: a trickle of VIP orders leaves
    /// one by one), else `linger` after the first of them finished, so a burst of VIP work
    /// leaves in a few transactions rather than one per record. `nil`: none is finished.
    public func vipFlushDue(linger: Duration) -> ContinuousClock.Instant? {
        guard let first = firstVIPFinishedAt else { return nil }
        let stillHandled = takenVIP - finishedVIP.count - flushingVIP
        return stillHandled > 0 ? first + linger : first
    }

    /// The batch's results are durably published: its offsets may be committed.
    public mutating func flushed(_ batch: [Finished]) {
        for f in batch {
            ledger.flushed(f.message.topicPartition, f.message.record.offset)
            if oneMessagePerOrder && f.message.lane == .vip { flushingVIP -= 1 }
            if f.message.lane == .vip { takenVIP -= 1 }
        }
    }

    /// The batch is given back unpublished (shutdown while its store refused it).
    public mutating func handBack(_ batch: [Finished]) {
        for f in batch {
            ledger.abandoned()
            if oneMessagePerOrder && f.message.lane == .vip { flushingVIP -= 1 }
            if f.message.lane == .vip { takenVIP -= 1 }
        }
    }

    /// Offsets that advanced since the last call: safe to commit.
    public mutating func takeCommittable() -> [TopicPartition: Int64] { ledger.takeCommittable() }
    public mutating func starts(_ offsets: [TopicPartition: Int64]) { for (tp, offset) in offsets { ledger.starts(tp, at: offset) } }

    /// Offsets taken by `takeCommittable` whose commit failed: offered again next time.
    public mutating func commitFailed(_ offsets: [TopicPartition: Int64]) { ledger.commitFailed(offsets) }

    /// Graceful shutdown: nothing new starts; messages not started are handed back (not
    /// committed, so redelivered after a restart). Returns the running attempts, which the
    /// runtime lets finish for a grace period and then cancels.
    public mutating func stop() -> [Int] {
        isStopping = true
        for _ in 0..<(readyVIP.count + readyStandard.count + queued.count) { ledger.abandoned() }
        takenVIP -= readyVIP.count + queued.values.filter { $0.message.lane == .vip }.count
        readyVIP = FIFO()
        readyStandard = FIFO()
        queued.removeAll()
        return Array(running.keys)
    }

    // MARK: Internals

    private func deadline(from now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        now + .nanoseconds(Int64(min(timeoutSeconds, 1e9) * 1e9))
    }

    private mutating func start(_ launch: Launch, now: ContinuousClock.Instant) -> Launch? {
        if running.count < concurrency {
            running[launch.token] = Running(message: launch.message, deadline: deadline(from: now))
            return launch
        }
        if launch.message.lane == .vip { readyVIP.append(launch) } else { readyStandard.append(launch) }
        return nil
    }

    /// Queues an outcome for the flusher; the next message of the same order starts (or, when
    /// decided already, finishes too).
    private mutating func complete(_ first: Finished, now: ContinuousClock.Instant) -> [Launch] {
        var launches: [Launch] = []
        var current: Finished? = first
        while let done = current {
            current = nil
            if oneMessagePerOrder && done.message.lane == .vip {
                if finishedVIP.isEmpty { firstVIPFinishedAt = now }
                finishedVIP.append(done)
            } else {
                finished.append(done)
            }
            guard oneMessagePerOrder, let token = ledger.finishHandling(orderKey: Self.orderKey(done.message)), let next = queued.removeValue(forKey: token) else { break }
            if let known = next.known {
                current = Finished(token: token, message: next.message, outcome: known)
            } else if let launch = start(Launch(token: token, message: next.message), now: now) {
                launches.append(launch)
            }
        }
        return launches
    }

    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// A first-in, first-out queue with amortised O(1) removal from the front.
struct FIFO<Element: Sendable>: Sendable {
    private var items: [Element] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func append(_ element: Element) { items.append(element) }

    mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }
}
