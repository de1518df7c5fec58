import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase

/// Reserves an order's items: all or nothing, in one transaction per batch, in arrival
/// order (so two orders racing for the last units are decided deterministically).
/// Insufficient stock fails the attempt with `OutOfStock`, which the policy retries.
public struct InventoryHandler: StepHandler {
    public typealias Work = [OrderItem]

    public let name = "inventory"
    let store: InventoryStore
    let world: SimulatedWorld
    let messages: SagaMessages

    public init(store: InventoryStore, world: SimulatedWorld, messages: SagaMessages) {
        self.store = store
        self.world = world
        self.messages = messages
    }

    public func recordedOutcomes(for batch: [InboundMessage]) throws -> [Int: HandlerResult] {
        try reemitRecorded(batch, step: .inventory, in: store.connection, recorded: "SELECT idempotency_key FROM reservations WHERE idempotency_key = ANY(?) AND status = 'reserved'", messages: messages)
    }

    public func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Work {
        let order = try message.requireOrder("inventory")
        let key = message.key(for: .inventory)
        let call = world.callNumber(key)
        try await world.latency(.inventory, key: key, call: call)
        switch world.fault(.inventory, key: key, call: call) {
        case .hang: try await SimulatedWorld.hang()
        case .transient: throw StepFailure(StepFailure.transientClass, "warehouse system busy (injected)")
        case .permanent: throw StepFailure("WarehouseRejected", "the warehouse refused the reservation (injected)")
        case .none: break
        }
        return order.items
    }

    public func apply(_ batch: [(message: InboundMessage, work: Work)]) throws -> [HandlerResult] {
        let now = UnixClock.nowMillis()
        return try store.connection.transaction { db in
            // What the batch needs to know, read in three statements rather than a few per
            // order; kept current below as the batch reserves.
            var reserved = Set(try db.query(
                "SELECT idempotency_key FROM reservations WHERE idempotency_key = ANY(?)", anyOf: batch.map { $0.message.key(for: .inventory) }) { $0.text(0) })
            let released = Set(try db.query(
                "SELECT idempotency_key FROM releases WHERE idempotency_key = ANY(?)", anyOf: batch.map { IdempotencyKey.undo($0.message.orderID, .inventory) }) { $0.text(0) })
            var stock = Dictionary(uniqueKeysWithValues: try db.query(
                "SELECT sku, units FROM stock WHERE sku = ANY(?)", anyOf: batch.flatMap { $0.work.map(\.sku) }) { ($0.text(0), $0.int(1)) })
            var taken: [String: Int64] = [:]
            var results: [HandlerResult] = []
            for (message, items) in batch {
                let key = message.key(for: .inventory)
                let next = messages.next(after: .inventory, orderID: message.orderID, orderJSON: message.record.value, priority: message.priority)
                if reserved.contains(key) {
                    results.append(.success([next]))
                    continue
                }
                if released.contains(IdempotencyKey.undo(message.orderID, .inventory)) {
                    results.append(.failure(StepFailure("OrderCompensated", "order \(message.orderID) was already compensated; not reserving")))
                    continue
                }
                // Merge repeated SKUs, then check everything before taking anything.
                var wanted: [String: Int64] = [:]
                for item in items { wanted[item.sku, default: 0] += Int64(item.quantity) }
                var shortage: String?
                for (sku, quantity) in wanted.sorted(by: { $0.key < $1.key }) {
                    guard let available = stock[sku] else {
                        shortage = "unknown SKU \(sku)"
                        break
                    }
                    if available < quantity {
                        shortage = "\(sku): \(quantity) wanted, \(available) in stock"
                        break
                    }
                }
                if let shortage {
                    results.append(.failure(StepFailure("OutOfStock", shortage)))
                    continue
                }
                var units: Int64 = 0
                for (sku, quantity) in wanted {
                    stock[sku]! -= quantity
                    taken[sku, default: 0] += quantity
                    try db.run("INSERT INTO reservation_items VALUES (?, ?, ?) ON CONFLICT (order_id, sku) DO UPDATE SET quantity = excluded.quantity", [.text(message.orderID), .text(sku), .integer(quantity)])
                    units += quantity
                }
                try db.run("INSERT INTO reservations VALUES (?, ?, ?, 'reserved', ?, NULL)", [.text(key), .text(message.orderID), .integer(units), .integer(now)])
                reserved.insert(key)
                results.append(.success([next]))
            }
            // One update per SKU for the whole batch.
            for (sku, quantity) in taken.sorted(by: { $0.key < $1.key }) {
                try db.run("UPDATE stock SET units = units - ? WHERE sku = ?", [.integer(quantity), .text(sku)])
            }
            return results
        }
    }
}
