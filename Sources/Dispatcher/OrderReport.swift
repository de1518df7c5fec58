/// One order as `fulfillment order <id> --json` and `GET /api/orders/{id}` show it: its
/// record, its full history and any rejection (docs/schemas/order.schema.json).
public struct OrderReport: Codable, Sendable {
    public var schema_version = 1
    public var order: DispatcherStore.OrderRecord?
    public var history: [DispatcherStore.HistoryEntry]
    public var rejections: [String]

    /// The order's report; nil when the store knows nothing of it (maybe still queued).
    public static func load(_ id: String, from store: DispatcherStore) throws -> OrderReport? {
        let order = try store.order(id)
        let rejections = try store.rejections(orderID: id).map { "\($0.reason): \($0.message)" }
        guard order != nil || !rejections.isEmpty else { return nil }
        return OrderReport(order: order, history: try store.history(id), rejections: rejections)
    }

    /// `order` is `null` for an order that was only rejected.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schema_version, forKey: .schema_version)
        try c.encode(order, forKey: .order)
        try c.encode(history, forKey: .history)
        try c.encode(rejections, forKey: .rejections)
    }
}
