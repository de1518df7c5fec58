import Broker
import Foundation
import SQLiteDatabase
import SagaDomain

/// A payment gateway as the payment step sees it. Every call carries an idempotency key: a
/// repeated call with the same key returns the first call's result and moves no money.
public protocol PaymentGateway: Sendable {
    /// Charges the order. Throws `StepFailure` `CardDeclined` (permanent) or
    /// `TransientError`; may hang (the step's timeout cancels it).
    func charge(idempotencyKey: String, orderID: String, amountCents: Int64, currency: String, token: String) async throws -> GatewayReceipt
    /// Refunds what `chargeKey` charged; refunding a charge that never happened succeeds with 0.
    func refund(idempotencyKey: String, chargeKey: String, orderID: String, token: String) async throws -> GatewayReceipt
}

public struct GatewayReceipt: Sendable, Hashable {
    public var reference: String
    public var amountCents: Int64
}

/// A gateway that behaves like a real one: its own durable ledger keyed by idempotency key,
/// declines, transient errors, hangs, replies lost after the money moved, latency, and
/// refunds that fail, driven by the fault profile and by test tokens:
/// `tok_decline`, `tok_transient_N`, `tok_hang`, `tok_timeout_after_charge`, `tok_refund_fail_N`.
public final class SimulatedPaymentGateway: PaymentGateway {
    let ledger: SQLiteConnection
    let world: SimulatedWorld

    static let schema = """
        CREATE TABLE IF NOT EXISTS ledger (
            idempotency_key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,            -- charge | refund
            order_id TEXT NOT NULL,
            amount_cents INTEGER NOT NULL,
            outcome TEXT NOT NULL,         -- charged | declined | refunded | nothing_to_refund
            reference TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS ledger_order ON ledger(order_id);
        """

    /// The ledger is the gateway's, not ours: it commits each call on its own, the way money
    /// has moved once a real gateway answers (WAL, synchronous=NORMAL: survives SIGKILL).
    public init(directory: String, world: SimulatedWorld, readOnly: Bool = false) throws {
        ledger = try StoreFile.open(directory: directory, name: "gateway", schema: Self.schema, readOnly: readOnly, synchronous: "NORMAL")
        self.world = world
    }

    private func recorded(_ key: String) throws -> (outcome: String, amount: Int64, reference: String)? {
        try ledger.query("SELECT outcome, amount_cents, reference FROM ledger WHERE idempotency_key = ?", [.text(key)]) {
            ($0.text(0), $0.int(1), $0.text(2))
        }.first
    }

    public func charge(idempotencyKey: String, orderID: String, amountCents: Int64, currency: String, token: String) async throws -> GatewayReceipt {
        let call = world.callNumber(idempotencyKey)
        try await world.latency(.payment, key: idempotencyKey, call: call)
        if let previous = try recorded(idempotencyKey) {
            if previous.outcome == "declined" { throw StepFailure("CardDeclined", "the card was declined (replayed result)") }
            return GatewayReceipt(reference: previous.reference, amountCents: previous.amount)
        }
        if token.contains("tok_hang") { try await SimulatedWorld.hang() }
        if let failures = ScriptedFault.count(in: token, prefix: "tok_transient_"), call <= failures {
            throw StepFailure(StepFailure.transientClass, "gateway unavailable (test token, call \(call))")
        }
        var declined = token.contains("tok_decline")
        switch world.fault(.payment, key: idempotencyKey, call: call) {
        case .hang: try await SimulatedWorld.hang()
        case .transient: throw StepFailure(StepFailure.transientClass, "gateway returned 503 (injected)")
        case .permanent: declined = true
        case .none: break
        }
        let reference = "ch_" + String(UInt64(FaultDraw.uniform(idempotencyKey, "ref") * 1e15), radix: 36)
        try ledger.run(
            "INSERT OR IGNORE INTO ledger VALUES (?, 'charge', ?, ?, ?, ?, ?)",
            [.text(idempotencyKey), .text(orderID), .integer(declined ? 0 : amountCents), .text(declined ? "declined" : "charged"), .text(reference), .integer(UnixClock.nowMillis())])
        if declined { throw StepFailure("CardDeclined", "the card was declined") }
        // Partial failure: the money moved but the reply is lost on the first call.
        if token.contains("tok_timeout_after_charge"), call == 1 { try await SimulatedWorld.hang() }
        return GatewayReceipt(reference: reference, amountCents: amountCents)
    }

    public func refund(idempotencyKey: String, chargeKey: String, orderID: String, token: String) async throws -> GatewayReceipt {
        let call = world.callNumber(idempotencyKey)
        try await world.latency(.payment, key: idempotencyKey, call: call)
        if let previous = try recorded(idempotencyKey) {
            return GatewayReceipt(reference: previous.reference, amountCents: previous.amount)
        }
        if let failures = ScriptedFault.count(in: token, prefix: "tok_refund_fail_"), call <= failures {
            throw StepFailure(StepFailure.transientClass, "refund failed: gateway timeout (test token, call \(call))")
        }
        if world.undoFails(.payment, key: idempotencyKey, call: call) {
            throw StepFailure(StepFailure.transientClass, "refund failed: gateway timeout (injected)")
        }
        let charge = try recorded(chargeKey)
        let amount = charge?.outcome == "charged" ? charge!.amount : 0
        let reference = amount > 0 ? "re_" + String(UInt64(FaultDraw.uniform(idempotencyKey, "ref") * 1e15), radix: 36) : ""
        try ledger.run(
            "INSERT OR IGNORE INTO ledger VALUES (?, 'refund', ?, ?, ?, ?, ?)",
            [.text(idempotencyKey), .text(orderID), .integer(amount), .text(amount > 0 ? "refunded" : "nothing_to_refund"), .text(reference), .integer(UnixClock.nowMillis())])
        return GatewayReceipt(reference: reference, amountCents: amount)
    }
}

