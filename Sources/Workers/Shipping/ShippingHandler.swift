import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// Prepares a shipment: pick, pack, label, beating the heartbeat after each stage. The
/// simulated carrier refuses some destinations (`UnsupportedDestination`, non-retryable:
/// countries `XX`, `ZZ`) and stalls without heartbeats for an address line containing `STALL`.
public struct ShippingHandler: StepHandler {
    public typealias Work = String

    public let name = "shipping"
    let store: ShippingStore
    let world: SimulatedWorld
    let messages: SagaMessages
    static let unsupportedCountries: Set<String> = ["XX", "ZZ"]

    public init(store: ShippingStore, world: SimulatedWorld, messages: SagaMessages) {
        self.store = store
        self.world = world
        self.messages = messages
    }

    public func recordedOutcomes(for batch: [InboundMessage]) throws -> [Int: HandlerResult] {
        try reemitRecorded(batch, step: .shipping, in: store.connection, recorded: "SELECT idempotency_key FROM shipments WHERE idempotency_key = ANY(?) AND status = 'prepared'", messages: messages)
    }

    public func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Work {
        let order = try message.requireOrder("shipment")
        if Self.unsupportedCountries.contains(order.shippingAddress.country) {
            throw StepFailure("UnsupportedDestination", "the carrier does not ship to \(order.shippingAddress.country)")
        }
        let key = message.key(for: .shipping)
        let call = world.callNumber(key)
        let fault = world.fault(.shipping, key: key, call: call)
        for stage in 0..<3 {
            try await world.latency(.shipping, key: key + "/\(stage)", call: call)
            if stage == 1 {
                if order.shippingAddress.line1.containsText("STALL") || fault == .hang { try await SimulatedWorld.hang() }
                if let failures = ScriptedFault.count(in: order.shippingAddress.line1, prefix: "FLAKY_"), call <= failures {
                    throw StepFailure(StepFailure.transientClass, "carrier API timeout (test address, call \(call))")
                }
                if fault == .transient { throw StepFailure(StepFailure.transientClass, "carrier API timeout (injected)") }
                if fault == .permanent { throw StepFailure("CarrierRejected", "the carrier rejected the parcel (injected)") }
            }
            heartbeat.beat()
        }
        return "TRK" + String(UInt64(FaultDraw.uniform(key, "tracking") * 1e12))
    }

    public func apply(_ batch: [(message: InboundMessage, work: Work)]) throws -> [HandlerResult] {
        let now = UnixClock.nowMillis()
        return try store.connection.transaction { db in
            let cancelled = Set(try db.query(
                "SELECT idempotency_key FROM cancellations WHERE idempotency_key = ANY(?)", anyOf: batch.map { IdempotencyKey.undo($0.message.orderID, .shipping) }) { $0.text(0) })
            return try batch.map { message, tracking in
                if cancelled.contains(IdempotencyKey.undo(message.orderID, .shipping)) {
                    return .failure(StepFailure("OrderCompensated", "order \(message.orderID) was already compensated; not shipping"))
                }
                try db.run("INSERT OR IGNORE INTO shipments VALUES (?, ?, ?, 'prepared', ?, NULL)", [.text(message.key(for: .shipping)), .text(message.orderID), .text(tracking), .integer(now)])
                return .success([messages.next(after: .shipping, orderID: message.orderID, orderJSON: message.record.value, priority: message.priority)])
            }
        }
    }
}
