import Foundation
import SagaDomain
@testable import SagaRuntime
import TestSupport
import Testing
@testable import Workers

@Suite struct PaymentGatewayTests {
    func gateway(_ stores: StoreBackend, _ profile: FaultProfile = .none) throws -> (SimulatedPaymentGateway, String) {
        let dir = NSTemporaryDirectory() + "gateway-\(UUID().uuidString.prefix(8))"
        let location = try stores.freshLocation(directory: dir)
        return (try SimulatedPaymentGateway(location: location, world: SimulatedWorld(profile: profile)), dir)
    }

    func ledgerRows(_ g: SimulatedPaymentGateway, _ order: String) throws -> [String] {
        try g.ledger.query("SELECT kind || ':' || outcome FROM ledger WHERE order_id = ? ORDER BY kind", [.text(order)]) { $0.text(0) }
    }

    @Test(arguments: StoreBackend.allCases) func aRepeatedChargeWithTheSameKeyReturnsTheFirstResultAndMovesNoMoney(_ stores: StoreBackend) async throws {
        let (g, dir) = try gateway(stores)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try await g.charge(idempotencyKey: "o-1:payment", orderID: "o-1", amountCents: 1999, currency: "USD", token: "tok_visa")
        let again = try await g.charge(idempotencyKey: "o-1:payment", orderID: "o-1", amountCents: 1999, currency: "USD", token: "tok_visa")
        #expect(first == again)
        #expect(try ledgerRows(g, "o-1") == ["charge:charged"])
    }

    @Test(arguments: StoreBackend.allCases) func concurrentChargesWithOneKeyChargeOnce(_ stores: StoreBackend) async throws {
        let (g, dir) = try gateway(stores)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let receipts = try await withThrowingTaskGroup(of: GatewayReceipt.self) { group in
            for _ in 0..<20 { group.addTask { try await g.charge(idempotencyKey: "o-2:payment", orderID: "o-2", amountCents: 500, currency: "USD", token: "tok_visa") } }
            return try await group.reduce(into: [GatewayReceipt]()) { $0.append($1) }
        }
        #expect(Set(receipts).count == 1)
        #expect(try ledgerRows(g, "o-2") == ["charge:charged"])
    }

    @Test(arguments: StoreBackend.allCases) func scriptedTokensFailLikeARealGateway(_ stores: StoreBackend) async throws {
        let (g, dir) = try gateway(stores)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for call in 1...2 {
            await #expect(throws: StepFailure.self, "call \(call)") {
                try await g.charge(idempotencyKey: "o-3:payment", orderID: "o-3", amountCents: 100, currency: "USD", token: "tok_transient_2")
            }
        }
        _ = try await g.charge(idempotencyKey: "o-3:payment", orderID: "o-3", amountCents: 100, currency: "USD", token: "tok_transient_2")
        do {
            _ = try await g.charge(idempotencyKey: "o-4:payment", orderID: "o-4", amountCents: 100, currency: "USD", token: "tok_decline")
            Issue.record("a declined card was charged")
        } catch let failure as StepFailure {
            #expect(failure.errorClass == "CardDeclined")
        }
        // The decline is remembered: replaying the key declines again, without a charge.
        await #expect(throws: StepFailure.self) { try await g.charge(idempotencyKey: "o-4:payment", orderID: "o-4", amountCents: 100, currency: "USD", token: "tok_visa") }
        #expect(try ledgerRows(g, "o-4") == ["charge:declined"])
    }

    @Test(arguments: StoreBackend.allCases) func refundsAreIdempotentAndRefundingNothingIsANoOp(_ stores: StoreBackend) async throws {
        let (g, dir) = try gateway(stores)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await g.charge(idempotencyKey: "o-5:payment", orderID: "o-5", amountCents: 700, currency: "USD", token: "tok_refund_fail_1")
        await #expect(throws: StepFailure.self) { try await g.refund(idempotencyKey: "o-5:payment:undo", chargeKey: "o-5:payment", orderID: "o-5", token: "tok_refund_fail_1") }
        let refund = try await g.refund(idempotencyKey: "o-5:payment:undo", chargeKey: "o-5:payment", orderID: "o-5", token: "tok_refund_fail_1")
        let again = try await g.refund(idempotencyKey: "o-5:payment:undo", chargeKey: "o-5:payment", orderID: "o-5", token: "tok_refund_fail_1")
        #expect(refund.amountCents == 700)
        #expect(again == refund)
        let nothing = try await g.refund(idempotencyKey: "o-6:payment:undo", chargeKey: "o-6:payment", orderID: "o-6", token: "tok_visa")
        #expect(nothing.amountCents == 0)
        #expect(try ledgerRows(g, "o-5") == ["charge:charged", "refund:refunded"])
    }
}
