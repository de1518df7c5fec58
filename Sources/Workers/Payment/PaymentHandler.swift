import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// Validates and charges payment through the gateway with the key `<order_id>:payment`.
public struct PaymentHandler: StepHandler {
    public struct Work: Sendable {
        var orderID: String
        var amountCents: Int64
        var currency: String
        var receipt: GatewayReceipt
    }

    public let name = "payment"
    let store: PaymentStore
    let gateway: any PaymentGateway
    let messages: SagaMessages

    public init(store: PaymentStore, gateway: any PaymentGateway, messages: SagaMessages) {
        self.store = store
        self.gateway = gateway
        self.messages = messages
    }

    public func recordedOutcomes(for batch: [InboundMessage]) throws -> [Int: HandlerResult] {
        try store.connection.withConnection { db in
            let charged = Set(try db.query(
                "SELECT idempotency_key FROM charges WHERE idempotency_key = ANY(?)", anyOf: batch.map { $0.key(for: .payment) }) { $0.text(0) })
            let refunded = Set(try db.query(
                "SELECT idempotency_key FROM refunds WHERE idempotency_key = ANY(?)", anyOf: batch.map { IdempotencyKey.undo($0.orderID, .payment) }) { $0.text(0) })
            var result: [Int: HandlerResult] = [:]
            for (i, message) in batch.enumerated() {
                if charged.contains(message.key(for: .payment)) {
                    result[i] = .success([messages.next(after: .payment, orderID: message.orderID, orderJSON: message.record.value, priority: message.priority)])
                } else if refunded.contains(IdempotencyKey.undo(message.orderID, .payment)) {
                    // Compensated meanwhile (a late duplicate): never charge it.
                    result[i] = .failure(StepFailure("OrderCompensated", "order \(message.orderID) was already compensated; not charging it"))
                }
            }
            return result
        }
    }

    public func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Work {
        let order = try message.requireOrder("payment")
        let receipt = try await gateway.charge(
            idempotencyKey: message.key(for: .payment), orderID: order.orderID, amountCents: order.amountCents,
            currency: order.currency, token: order.payment.token)
        return Work(orderID: order.orderID, amountCents: order.amountCents, currency: order.currency, receipt: receipt)
    }

    public func apply(_ batch: [(message: InboundMessage, work: Work)]) throws -> [HandlerResult] {
        let now = UnixClock.nowMillis()
        try store.connection.transaction { db in
            for (message, work) in batch {
                try db.run(
                    "INSERT OR IGNORE INTO charges VALUES (?, ?, ?, ?, ?, ?)",
                    [.text(message.key(for: .payment)), .text(work.orderID), .integer(work.amountCents), .text(work.currency), .text(work.receipt.reference), .integer(now)])
            }
        }
        return batch.map { message, _ in
            .success([messages.next(after: .payment, orderID: message.orderID, orderJSON: message.record.value, priority: message.priority)])
        }
    }
}
