import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// Sends the confirmation through the simulated mail service and publishes
/// `orders.completed`. Addresses at `bounce.example` fail permanently (`MailboxUnavailable`).
public struct NotificationHandler: StepHandler {
    public typealias Work = String

    public let name = "notification"
    let store: NotificationStore
    let world: SimulatedWorld
    let messages: SagaMessages

    public init(store: NotificationStore, world: SimulatedWorld, messages: SagaMessages) {
        self.store = store
        self.world = world
        self.messages = messages
    }

    public func recordedOutcomes(for batch: [InboundMessage]) throws -> [Int: HandlerResult] {
        try reemitRecorded(batch, step: .notification, in: store.connection, recorded: "SELECT idempotency_key FROM outbox WHERE idempotency_key = ANY(?)", messages: messages)
    }

    public func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Work {
        let order = try message.requireOrder("notification")
        if order.email.hasSuffix("@bounce.example") {
            throw StepFailure("MailboxUnavailable", "mailbox \(order.email) does not exist")
        }
        let key = message.key(for: .notification)
        let call = world.callNumber(key)
        try await world.latency(.notification, key: key, call: call)
        switch world.fault(.notification, key: key, call: call) {
        case .hang: try await SimulatedWorld.hang()
        case .transient: throw StepFailure(StepFailure.transientClass, "mail relay deferred the message (injected)")
        case .permanent: throw StepFailure("MailboxUnavailable", "mail relay rejected the message (injected)")
        case .none: break
        }
        return order.email
    }

    public func apply(_ batch: [(message: InboundMessage, work: Work)]) throws -> [HandlerResult] {
        let now = UnixClock.nowMillis()
        return try store.connection.transaction { db in
            let noticedFailure = Set(try db.query(
                "SELECT order_id FROM outbox WHERE order_id = ANY(?) AND kind = 'failure'", anyOf: batch.map { $0.message.orderID }) { $0.text(0) })
            return try batch.map { message, email in
                if noticedFailure.contains(message.orderID) {
                    return .failure(StepFailure("OrderCompensated", "order \(message.orderID) already got a failure notice"))
                }
                try db.run("INSERT OR IGNORE INTO outbox VALUES (?, ?, 'confirmation', ?, ?)", [.text(message.key(for: .notification)), .text(message.orderID), .text(email), .integer(now)])
                return .success([messages.next(after: .notification, orderID: message.orderID, orderJSON: message.record.value, priority: message.priority)])
            }
        }
    }
}
