import Messaging
import SagaDomain

/// Synthetic orders for `run --orders N` and `produce --generate N`: 1-3 items of the
/// catalogue, a share of VIP customers, unique ids per run.
public struct LoadGenerator: Sendable {
    public var count: Int
    public var vipShare: Double
    /// Orders per second (`nil`: as fast as the broker takes them).
    public var rate: Double?
    public var skuCount: Int
    public var runTag: String
    /// VIP orders (tier, or amount above this) go to `orders.priority`.
    public var vipThreshold: Double = 10_000

    public init(count: Int, vipShare: Double, rate: Double?, skuCount: Int, runTag: String = LoadGenerator.newRunTag()) {
        self.count = count
        self.vipShare = vipShare
        self.rate = rate
        self.skuCount = skuCount
        self.runTag = runTag
    }

    public static func newRunTag() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 36) }

    public func order(_ n: Int) -> Order {
        let u = FaultDraw.uniform(runTag, String(n))
        let items = (0..<(1 + n % 3)).map { i in
            OrderItem(
                sku: "SKU-\(1 + Int(FaultDraw.uniform(runTag, String(n), "sku", String(i)) * Double(skuCount)) % skuCount)",
                quantity: 1 + (n + i) % 3,
                unitPrice: Double(500 + Int(FaultDraw.uniform(runTag, String(n), "price", String(i)) * 20_000)) / 100)
        }
        return Order(
            orderID: "o-\(runTag)-\(n)", customerID: "c-\(n % 5000)", customerTier: u < vipShare ? .vip : .standard, currency: "USD",
            items: items, payment: PaymentDetails(method: "card", token: "tok_visa"),
            shippingAddress: ShippingAddress(name: "Customer \(n)", line1: "\(n % 999 + 1) Main St", city: "Springfield", postalCode: "12345", country: "US"),
            email: "c\(n % 5000)@example.com")
    }

    /// The order's record, on the intake topic of its lane.
    public static func record(_ order: Order, topics: SagaTopics, vipThreshold: Double) -> ProducerRecord {
        ProducerRecord(topic: topics.orders(order.lane(vipAbove: vipThreshold)), key: Array(order.orderID.utf8), value: order.canonicalJSON())
    }

    /// Produces every order; calls `progress` with the number produced so far.
    public func produce(to broker: any MessageBroker, topics: SagaTopics, progress: @Sendable (Int) -> Void = { _ in }) async throws {
        let start = ContinuousClock.now
        var n = 0
        let batch = rate.map { max(1, min(500, Int($0 / 20))) } ?? 500
        while n < count {
            let end = min(count, n + batch)
            _ = try await broker.produce((n..<end).map { Self.record(order($0), topics: topics, vipThreshold: vipThreshold) })
            n = end
            progress(n)
            if let rate {
                let due = start + .milliseconds(Int64(Double(n) / rate * 1000))
                if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) }
            }
        }
    }
}
