import Foundation
import IOThreads
import Messaging
import SagaDomain
import SagaRuntime
import StoreDatabase
import Synchronization

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
    public let ledger: StoreConnection
    let world: SimulatedWorld
    private let batcher: LedgerBatcher

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

    /// The ledger is the gateway's, not ours: a call returns only once its row is committed,
    /// the way money has moved once a real gateway answers (WAL, synchronous=NORMAL:
    /// survives SIGKILL of our process, as a real gateway survives it).
    public init(location: String, world: SimulatedWorld, readOnly: Bool = false) throws {
        ledger = try StoreConnection.openStep(location: location, name: "gateway", schema: Self.schema, readOnly: readOnly, synchronous: "NORMAL")
        batcher = LedgerBatcher(ledger: ledger)
        self.world = world
    }

    /// What the gateway's ledger says moved for one order, for the conservation check.
    public struct OrderMoney: Sendable {
        public var chargedCents: Int64 = 0
        public var refundedCents: Int64 = 0
        /// Successful charges (more than one is a double charge).
        public var charges = 0

        public init() {}
    }

    /// The ledger's rows by order id in byte order, each as what it adds to its order's money
    /// (for the conservation check's merge of the stores).
    public func moneyRowsByOrder() throws -> RowCursor<(String, OrderMoney)> {
        try ledger.cursor("SELECT order_id, kind, amount_cents, outcome FROM ledger \(ledger.orderedByBytes("order_id"))") { row in
            var money = OrderMoney()
            if row.text(1) == "charge", row.text(3) == "charged" {
                money.chargedCents = row.int(2)
                money.charges = 1
            } else if row.text(1) == "refund" {
                money.refundedCents = row.int(2)
            }
            return (row.text(0), money)
        }
    }

    /// Money charged and refunded over the whole ledger.
    public func moneyTotals() throws -> OrderMoney {
        let sums = try ledger.query("""
            SELECT COALESCE(SUM(CASE WHEN kind = 'charge' AND outcome = 'charged' THEN amount_cents ELSE 0 END), 0),
                   COALESCE(SUM(CASE WHEN kind = 'refund' THEN amount_cents ELSE 0 END), 0)
            FROM ledger
            """) { ($0.int(0), $0.int(1)) }.first ?? (0, 0)
        var totals = OrderMoney()
        totals.chargedCents = sums.0
        totals.refundedCents = sums.1
        return totals
    }

    public func charge(idempotencyKey: String, orderID: String, amountCents: Int64, currency: String, token: String) async throws -> GatewayReceipt {
        let call = world.callNumber(idempotencyKey)
        try await world.latency(.payment, key: idempotencyKey, call: call)
        // A gateway client library that crashes the process on one input, as a native SDK
        // with a bug does: what poison-record quarantine exists for (tests use it).
        if token.containsText("tok_crash_process") { fatalError("simulated gateway client crashed on order \(orderID) (test token tok_crash_process)") }
        let reference = "ch_" + String(UInt64(FaultDraw.uniform(idempotencyKey, "ref") * 1e15), radix: 36)
        // What this call would do if the key is new; a key already in the ledger replays its
        // first result instead, whatever this call would have done.
        var intent = LedgerBatcher.Intent.charge(amount: amountCents, reference: reference)
        if token.containsText("tok_decline") { intent = .decline(reference: reference) }
        switch world.fault(.payment, key: idempotencyKey, call: call) {
        case .hang: intent = .hang
        case .transient: intent = .transient("gateway returned 503 (injected)")
        case .permanent: intent = .decline(reference: reference)
        case .none: break
        }
        if let failures = ScriptedFault.count(in: token, prefix: "tok_transient_"), call <= failures {
            intent = .transient("gateway unavailable (test token, call \(call))")
        }
        if token.containsText("tok_hang") { intent = .hang }
        switch try await batcher.submit(key: idempotencyKey, orderID: orderID, intent: intent) {
        case .hang:
            try await SimulatedWorld.hang()
        case .transient(let message):
            throw StepFailure(StepFailure.transientClass, message)
        case .recorded(let outcome, let amount, let reference, let replayed):
            if outcome == "declined" { throw StepFailure("CardDeclined", "the card was declined" + (replayed ? " (replayed result)" : "")) }
            // Partial failure: the money moved but the reply is lost on the first call.
            if token.containsText("tok_timeout_after_charge"), call == 1 { try await SimulatedWorld.hang() }
            return GatewayReceipt(reference: reference, amountCents: amount)
        }
    }

    public func refund(idempotencyKey: String, chargeKey: String, orderID: String, token: String) async throws -> GatewayReceipt {
        let call = world.callNumber(idempotencyKey)
        try await world.latency(.payment, key: idempotencyKey, call: call)
        var intent = LedgerBatcher.Intent.refund(chargeKey: chargeKey, reference: "re_" + String(UInt64(FaultDraw.uniform(idempotencyKey, "ref") * 1e15), radix: 36))
        if world.undoFails(.payment, key: idempotencyKey, call: call) {
            intent = .transient("refund failed: gateway timeout (injected)")
        }
        if let failures = ScriptedFault.count(in: token, prefix: "tok_refund_fail_"), call <= failures {
            intent = .transient("refund failed: gateway timeout (test token, call \(call))")
        }
        switch try await batcher.submit(key: idempotencyKey, orderID: orderID, intent: intent) {
        case .hang:
            try await SimulatedWorld.hang()
        case .transient(let message):
            throw StepFailure(StepFailure.transientClass, message)
        case .recorded(_, let amount, let reference, _):
            return GatewayReceipt(reference: reference, amountCents: amount)
        }
    }
}

/// The gateway's ledger writes, group-committed: concurrent calls queue up and one
/// transaction on a blocking-I/O thread settles all of them, each answered only once its
/// row is committed. Every call is "insert if the key is new, else replay the first result".
final class LedgerBatcher: Sendable {
    enum Intent: Sendable {
        case charge(amount: Int64, reference: String)
        case decline(reference: String)
        case refund(chargeKey: String, reference: String)
        case transient(String)
        case hang
    }

    enum Reply: Sendable {
        case recorded(outcome: String, amount: Int64, reference: String, replayed: Bool)
        case transient(String)
        case hang
    }

    private struct Request: Sendable {
        var key: String
        var orderID: String
        var intent: Intent
        var continuation: CheckedContinuation<Reply, any Error>
    }

    private let ledger: StoreConnection
    private let queue = Mutex<(pending: [Request], draining: Bool)>(([], false))

    init(ledger: StoreConnection) { self.ledger = ledger }

    func submit(key: String, orderID: String, intent: Intent) async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            let start = queue.withLock { queue -> Bool in
                queue.pending.append(Request(key: key, orderID: orderID, intent: intent, continuation: continuation))
                if queue.draining { return false }
                queue.draining = true
                return true
            }
            if start { BlockingIO.submit { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch = queue.withLock { queue -> [Request] in
                if queue.pending.isEmpty {
                    queue.draining = false
                    return []
                }
                defer { queue.pending.removeAll(keepingCapacity: true) }
                return queue.pending
            }
            if batch.isEmpty { return }
            do {
                let replies = try ledger.transaction { db in
                    var known = try KnownEntries(for: batch, db)
                    return try batch.map { request in try self.settle(request, &known, db) }
                }
                for (request, reply) in zip(batch, replies) { request.continuation.resume(returning: reply) }
            } catch {
                for request in batch { request.continuation.resume(throwing: StepFailure(StepFailure.transientClass, "gateway ledger unavailable: \(error)")) }
            }
        }
    }

    /// The ledger entries a batch of requests needs, read in two statements instead of one or
    /// two per request, and kept current as the batch settles (one key twice in a batch is
    /// settled once and replayed).
    private struct KnownEntries {
        var byKey: [String: (outcome: String, amount: Int64, reference: String)]
        var refundedOrders: Set<String>

        init(for batch: [Request], _ db: StoreConnection.Transaction) throws {
            let keys = batch.flatMap { request -> [String] in
                if case .refund(let chargeKey, _) = request.intent { return [request.key, chargeKey] }
                return [request.key]
            }
            byKey = Dictionary(try db.query("SELECT idempotency_key, outcome, amount_cents, reference FROM ledger WHERE idempotency_key = ANY(?)", anyOf: keys) {
                ($0.text(0), (outcome: $0.text(1), amount: $0.int(2), reference: $0.text(3)))
            }, uniquingKeysWith: { first, _ in first })
            refundedOrders = Set(try db.query(
                "SELECT order_id FROM ledger WHERE order_id = ANY(?) AND kind = 'refund'",
                anyOf: batch.compactMap { if case .charge = $0.intent { $0.orderID } else { nil } }) { $0.text(0) })
        }
    }

    private func settle(_ request: Request, _ known: inout KnownEntries, _ db: StoreConnection.Transaction) throws -> Reply {
        if let (outcome, amount, reference) = known.byKey[request.key] {
            return .recorded(outcome: outcome, amount: amount, reference: reference, replayed: true)
        }
        let now = UnixClock.nowMillis()
        func insert(_ kind: String, _ amount: Int64, _ outcome: String, _ reference: String) throws -> Reply {
            try db.run("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)", [.text(request.key), .text(kind), .text(request.orderID), .integer(amount), .text(outcome), .text(reference), .integer(now)])
            known.byKey[request.key] = (outcome, amount, reference)
            if kind == "refund" { known.refundedOrders.insert(request.orderID) }
            return .recorded(outcome: outcome, amount: amount, reference: reference, replayed: false)
        }
        switch request.intent {
        case .hang: return .hang
        case .transient(let message): return .transient(message)
        case .charge(let amount, let reference):
            // A refund already came for this order (its compensation overtook a slow charge):
            // the charge is voided, as a real gateway refuses to capture a cancelled payment.
            if known.refundedOrders.contains(request.orderID) {
                return try insert("charge", 0, "declined", "voided: the order was refunded before this charge")
            }
            return try insert("charge", amount, "charged", reference)
        case .decline(let reference): return try insert("charge", 0, "declined", reference)
        case .refund(let chargeKey, let reference):
            let charge = known.byKey[chargeKey]
            let charged = charge?.outcome == "charged" ? charge!.amount : 0
            return try insert("refund", charged, charged > 0 ? "refunded" : "nothing_to_refund", charged > 0 ? reference : "")
        }
    }
}
