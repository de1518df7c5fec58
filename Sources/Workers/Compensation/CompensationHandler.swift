import CoreMetrics
import FulfillmentMetrics
import IOThreads
import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// Claims the order's one notice as a failure notice, then undoes what the order holds,
/// newest effect first (cancel shipment -> release inventory -> refund payment), and
/// publishes `orders.compensated`. An order whose confirmation was already sent completed:
/// a late compensation request for it (a duplicate, a watchdog that acted on a slow order)
/// undoes nothing. Every
/// undo is keyed `<order_id>:<step>:undo`, so a retried compensation redoes nothing already
/// done; a failing undo (a refund timing out) fails the attempt, which the compensation
/// policy retries with capped backoff.
public struct CompensationHandler: StepHandler {
    public struct Work: Sendable {
        var reason: String
        /// The order completed before compensation could claim it: nothing was undone.
        var orderCompleted: Bool
    }

    public let name = "compensation"
    let payments: PaymentStore
    let gateway: any PaymentGateway
    let inventory: InventoryStore
    let shipping: ShippingStore
    let notifications: NotificationStore
    let world: SimulatedWorld
    let messages: SagaMessages
    /// Undo actions counted by `[action, result]`.
    let actions: HandleFamily<Counter>

    public init(
        payments: PaymentStore, gateway: any PaymentGateway, inventory: InventoryStore, shipping: ShippingStore, notifications: NotificationStore, world: SimulatedWorld,
        messages: SagaMessages, actions: HandleFamily<Counter> = HandleFamily { MetricHandles.disabled.counter(MetricCatalogue.compensations, $0) }
    ) {
        self.actions = actions
        self.payments = payments
        self.gateway = gateway
        self.inventory = inventory
        self.shipping = shipping
        self.notifications = notifications
        self.world = world
        self.messages = messages
    }

    public func recordedOutcomes(for batch: [InboundMessage]) throws -> [Int: HandlerResult] { [:] }

    public func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Work {
        let order = try message.requireOrder("compensation")
        // By default every compensable step, newest first, whatever the step that failed: an
        // order can be further along than its failure shows, since the watchdog acts on the
        // tracker's view, which lags, and a re-published request may have run on. Undoing a
        // step that did nothing only leaves its tombstone, which also stops a late request for
        // that step from acting on a compensated order. A configuration that names the failed
        // step's `undo` list gets exactly that list (the `undo` header).
        let undo = message.record.header(SagaHeader.undo).map { $0.split(separator: ",").compactMap { SagaStep(rawValue: String($0)) } }
            ?? SagaStep.notification.undoOrderOnFailure
        let now = UnixClock.nowMillis()
        // The outbox decides, once, whether an order completed or failed: the confirmation and
        // the failure notice compete for its single row. Claim it before undoing anything; if
        // the confirmation got there first the order completed, and undoing it would be wrong.
        let notifications = self.notifications
        let claimed = try await BlockingIO.run { try notifications.claimFailure(orderID: order.orderID, email: order.email, at: now) }
        guard claimed else { return Work(reason: "", orderCompleted: true) }
        for step in undo {
            let action = step == .shipping ? "cancel" : step == .inventory ? "release" : "refund"
            do {
                try await undoEffect(of: step, order: order, at: now)
                if step != .notification { actions[action, "ok"].increment() }
            } catch {
                actions[action, "failed"].increment()
                throw error
            }
            heartbeat.beat()
        }
        return Work(reason: message.record.header(SagaHeader.reason) ?? "compensation", orderCompleted: false)
    }

    /// One undo, keyed `<order_id>:<step>:undo`: what never happened is a no-op.
    private func undoEffect(of step: SagaStep, order: Order, at now: Int64) async throws {
        let key = IdempotencyKey.undo(order.orderID, step)
        switch step {
        case .shipping:
            if world.undoFails(.shipping, key: key, call: world.callNumber(key)) {
                throw StepFailure(StepFailure.transientClass, "cancel shipment failed: carrier unavailable (injected)")
            }
            let shipping = self.shipping
            try await BlockingIO.run { try shipping.cancel(orderID: order.orderID, at: now) }
        case .inventory:
            if world.undoFails(.inventory, key: key, call: world.callNumber(key)) {
                throw StepFailure(StepFailure.transientClass, "release failed: warehouse system busy (injected)")
            }
            let inventory = self.inventory
            _ = try await BlockingIO.run { try inventory.release(orderID: order.orderID, at: now) }
        case .payment:
            let payments = self.payments
            if try await !BlockingIO.run({ try payments.isRefunded(orderID: order.orderID) }) {
                let receipt = try await gateway.refund(idempotencyKey: key, chargeKey: IdempotencyKey.step(order.orderID, .payment), orderID: order.orderID, token: order.payment.token)
                try await BlockingIO.run { try payments.recordRefund(orderID: order.orderID, receipt: receipt, at: now) }
            }
        case .notification:
            break
        }
    }

    public func apply(_ batch: [(message: InboundMessage, work: Work)]) throws -> [HandlerResult] {
        batch.map { message, work in
            work.orderCompleted
                ? .success([])
                : .success([messages.compensated(orderID: message.orderID, orderJSON: message.record.value, priority: message.priority, reason: work.reason)])
        }
    }
}
