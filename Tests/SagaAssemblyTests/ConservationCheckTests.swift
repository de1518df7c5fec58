import Foundation
import SagaAssembly
import StoreDatabase
import TestSupport
import Testing

/// The conservation check merges the stores sorted by order id. A check that cannot fail
/// proves nothing: a finished saga's stores are tampered with here, one invariant per order,
/// and the check must name exactly those orders. Ids are chosen so that text order and
/// number order differ ("c-10" before "c-2"), and ledger rows of orders the dispatcher never
/// saw sort before and after all others, which the merge must pass over.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ConservationCheckTests {
    typealias H = SagaHarness

    @Test(arguments: StoreBackend.allCases) func everyTamperedInvariantIsFoundOnItsOrder(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        let completed = ["c-1", "c-10", "c-2", "c-9", "c-3"]
        let orders = completed.map { H.order($0) } + [H.order("c-5", country: "XX")]
        try await saga.submit(orders)
        let records = try await saga.waitUntilTerminal(orders.map(\.orderID))
        #expect(records["c-5"]?.state == "compensated")
        let clean = try saga.check()
        #expect(clean.ok, "\(clean.violations)")
        #expect(clean.ordersChecked == 6)
        await saga.stop()

        let location = saga.storeLocation
        let gateway = try StoreConnection.open(location: location, name: "gateway")
        // c-10 charged twice; money for orders nobody submitted, first and last in byte order.
        for (key, order) in [("c-10:payment:again", "c-10"), ("a-0:payment", "a-0"), ("zz-9:payment", "zz-9")] {
            try gateway.run("INSERT INTO ledger VALUES (?, 'charge', ?, 1000, 'charged', 'ch_test', 0)", [.text(key), .text(order)])
        }
        try StoreConnection.open(location: location, name: "shipping").run("UPDATE shipments SET status = 'cancelled' WHERE order_id = 'c-2'")
        try StoreConnection.open(location: location, name: "notifications").run("DELETE FROM outbox WHERE order_id = 'c-9'")
        try StoreConnection.open(location: location, name: "inventory").run("UPDATE reservations SET status = 'reserved' WHERE order_id = 'c-5'")

        let report = try saga.check()
        #expect(!report.ok)
        #expect(report.ordersChecked == 6)
        let found = Set(report.violations.map { "\($0.orderID ?? "-") \($0.invariant)" })
        #expect(found.isSuperset(of: ["c-10 charged_once", "c-10 money", "c-2 shipment", "c-9 one_notice", "c-5 stock", "- money"]), "\(found)")
        let named = Set(report.violations.compactMap(\.orderID))
        #expect(named == ["c-10", "c-2", "c-9", "c-5"], "\(report.violations)")
        // Totals still count every ledger row, the unknown orders' too.
        #expect(report.chargedCents == clean.chargedCents + 3000)
    }
}
