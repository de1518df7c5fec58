import Foundation
import Messaging
import SagaDomain
@testable import SagaRuntime
import TestSupport
import Testing
@testable import Workers

/// The inventory step's batch: the lookups are read once per batch and kept current while the
/// batch reserves, so each decision must still be the one a record-by-record pass would make.
@Suite struct InventoryHandlerTests {
    func handler(_ stores: StoreBackend) throws -> (InventoryHandler, InventoryStore, String) {
        let dir = NSTemporaryDirectory() + "inventory-\(UUID().uuidString.prefix(8))"
        let store = try InventoryStore(location: try stores.freshLocation(directory: dir))
        try store.seedIfEmpty(skuCount: 0, units: 0, stockFile: ["SKU-A": 3, "SKU-B": 10])
        let handler = InventoryHandler(store: store, world: SimulatedWorld(profile: .none), messages: SagaMessages(topics: SagaConfiguration().topics))
        return (handler, store, dir)
    }

    static func item(_ sku: String, _ quantity: Int) -> OrderItem { OrderItem(sku: sku, quantity: quantity, unitPrice: 1) }

    static func request(_ orderID: String, offset: Int64) -> InboundMessage {
        InboundMessage(record: ConsumerRecord(topic: "inventory.requested", partition: 0, offset: offset, timestamp: 1_700_000_000_000,
                                              key: Array(orderID.utf8), value: Array("{}".utf8), headers: []))
    }

    static func errorClass(_ result: HandlerResult) -> String? {
        if case .failure(let failure) = result { return failure.errorClass }
        return nil
    }

    @Test(arguments: StoreBackend.allCases)
    func aBatchDecidesEachOrderAsIfAlone(_ stores: StoreBackend) throws {
        let (handler, store, dir) = try handler(stores)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try store.release(orderID: "o-released", at: 1)
        let batch: [(message: InboundMessage, work: [OrderItem])] = [
            (Self.request("o-1", offset: 0), [Self.item("SKU-A", 1), Self.item("SKU-B", 1), Self.item("SKU-A", 1)]),
            (Self.request("o-2", offset: 1), [Self.item("SKU-A", 2)]),  // one unit of A left
            (Self.request("o-1", offset: 2), [Self.item("SKU-A", 1), Self.item("SKU-B", 1), Self.item("SKU-A", 1)]),  // redelivered
            (Self.request("o-3", offset: 3), [Self.item("SKU-B", 1), Self.item("SKU-Z", 1)]),  // nothing taken
            (Self.request("o-released", offset: 4), [Self.item("SKU-B", 1)]),
            (Self.request("o-4", offset: 5), [Self.item("SKU-A", 1), Self.item("SKU-B", 9)]),  // exactly what is left
            (Self.request("o-5", offset: 6), [Self.item("SKU-B", 1)]),
        ]
        let results = try handler.apply(batch)
        #expect(results.map(Self.errorClass) == [nil, "OutOfStock", nil, "OutOfStock", "OrderCompensated", nil, "OutOfStock"])
        #expect(try store.units(of: "SKU-A") == 0)
        #expect(try store.units(of: "SKU-B") == 0)
        let reserved = try store.connection.query("SELECT order_id, units FROM reservations ORDER BY order_id") { "\($0.text(0))=\($0.int(1))" }
        #expect(reserved == ["o-1=3", "o-4=10"])

        // The next batch finds o-1 in the store: re-emitted, nothing taken again.
        let again = try handler.apply([(Self.request("o-1", offset: 7), [Self.item("SKU-B", 5)])])
        #expect(again.map(Self.errorClass) == [nil])
        #expect(try handler.recordedOutcomes(for: [Self.request("o-2", offset: 8), Self.request("o-4", offset: 9)]).keys.sorted() == [1])
        #expect(try store.unitsTaken() == 13)
    }
}
