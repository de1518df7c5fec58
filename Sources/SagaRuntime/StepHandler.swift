import IOThreads
import Messaging
import SagaDomain
import StoreDatabase

/// Why one attempt failed: an error class the retry policy matches on (`TransientError`,
/// `Timeout`, `HeartbeatTimeout`, `OutOfStock`, `CardDeclined`, ...) and a message.
public struct StepFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var errorClass: String
    public var message: String

    public init(_ errorClass: String, _ message: String) {
        self.errorClass = errorClass
        self.message = message
    }

    public var description: String { "\(errorClass): \(message)" }

    public static let transientClass = "TransientError"
    public static let timeoutClass = "Timeout"
    public static let heartbeatTimeoutClass = "HeartbeatTimeout"
    public static let malformedClass = "MalformedMessage"
}

/// What applying one message's work produced.
public enum HandlerResult: Sendable {
    /// Done: publish these records (the next step's request, a completion, ...).
    case success([ProducerRecord])
    case failure(StepFailure)
}

/// One step's business logic, run by `WorkerRuntime`. The runtime owns consuming, ordering,
/// timeouts, retries, dead-lettering, producing and committing; a handler only says what a
/// message means.
public protocol StepHandler: Sendable {
    associatedtype Work: Sendable

    /// Used for the consumer group, logs and metrics.
    var name: String { get }

    /// Whether `perform` only computes and never waits on the outside world (the intake's
    /// validation, the tracker, the compensation driver). The runtime then runs it in line,
    /// in consumption order, with no task, timeout or heartbeat of its own.
    var performsInline: Bool { get }

    /// The priority of this handler's store work (`recordedOutcomes`, `apply`) on the
    /// blocking threads. `.background` for work no order waits for (the tracker's), so a
    /// saturated machine gives its cores to the steps first.
    var storePriority: BlockingIO.Priority { get }

    /// What the store already says about these messages, by index: `.success` with the
    /// records to re-emit for an effect already recorded (a redelivered message changes
    /// nothing and publishes the same outcome again), or `.failure` for a message that must
    /// not be worked on (its order was compensated meanwhile). Others are absent. Runs off
    /// the cooperative pool, once per batch.
    func recordedOutcomes(for messages: [InboundMessage]) throws -> [Int: HandlerResult]

    /// The part of the work done outside the store, such as a call to the payment gateway
    /// with the message's idempotency key. Cancelled at the step's timeout, or when
    /// `heartbeat` is not beaten for `heartbeat_seconds`.
    func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Work

    /// Applies a batch of finished work in one store transaction and says, per message in
    /// the same order, what to publish or why it failed.
    func apply(_ batch: [(message: InboundMessage, work: Work)]) throws -> [HandlerResult]
}

extension StepHandler {
    public var performsInline: Bool { false }
    public var storePriority: BlockingIO.Priority { .normal }

    /// Nothing recorded: every message is handled afresh.
    public func recordedOutcomes(for messages: [InboundMessage]) throws -> [Int: HandlerResult] { [:] }

    /// The usual `recordedOutcomes`: messages whose idempotency key `recorded` finds in the
    /// store re-emit what follows `step`. `recorded` selects the keys found among `= ANY(?)`,
    /// so the batch is looked up in one statement.
    package func reemitRecorded(_ batch: [InboundMessage], step: SagaStep, in connection: StoreConnection, recorded sql: String, messages: SagaMessages) throws -> [Int: HandlerResult] {
        try connection.withConnection { db in
            let found = Set(try db.query(sql, anyOf: batch.map { $0.key(for: step) }) { $0.text(0) })
            var result: [Int: HandlerResult] = [:]
            for (i, message) in batch.enumerated() where found.contains(message.key(for: step)) {
                result[i] = .success([messages.next(after: step, orderID: message.orderID, orderJSON: message.record.value, priority: message.priority)])
            }
            return result
        }
    }
}
