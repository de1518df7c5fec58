import Dispatcher
import Foundation
import Messaging
import SagaAssembly
import SagaDomain
import SagaRuntime
import TestSupport
import Testing

/// The saga end to end: the real embedded broker, every worker and the dispatcher, real
/// stores (SQLite files, and again a PostgreSQL database), the fast profile. One scenario at
/// a time (they measure delays and timeouts).
@Suite(.serialized, .timeLimit(.minutes(2))) struct SagaScenarioTests {
    typealias H = SagaHarness

    @Test(arguments: StoreBackend.allCases) func theHappyPathCompletesEveryOrderAndConservesMoneyAndStock(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        let stockBefore = try #require(try saga.stock("SKU-2"))
        try saga.start()
        let ids = (0..<40).map { "happy-\($0)" }
        try await saga.submit(ids.map { H.order($0, sku: "SKU-2", quantity: 2, price: 12.5) })
        let records = try await saga.waitUntilTerminal(ids)
        #expect(records.values.allSatisfy { $0.state == "completed" })
        #expect(try saga.stock("SKU-2") == stockBefore - 80)
        #expect(try saga.ledger("happy-7") == ["charge:charged:2500"])
        #expect(try saga.shipment("happy-7") == "prepared")
        #expect(try saga.notice("happy-7") == "confirmation")
        let events = try saga.history("happy-7").map(\.event)
        #expect(events.first == "accepted")
        #expect(events.filter { $0 == "requested" }.count == 4)
        #expect(events.last == "completed")
        let report = try saga.check()
        #expect(report.ok, "\(report.violations)")
        #expect(report.completedAmountCents == 40 * 2500)
    }

    @Test(arguments: StoreBackend.allCases) func aPermanentFailureAtEachStepUndoesExactlyTheEffectsDone(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        let orders = [
            H.order("fail-payment", token: "tok_decline"),
            H.order("fail-inventory", sku: "SKU-404"),
            H.order("fail-shipping", country: "XX"),
            H.order("fail-notification", email: "nobody@bounce.example"),
        ]
        try await saga.submit(orders)
        let records = try await saga.waitUntilTerminal(orders.map(\.orderID))
        #expect(records.values.allSatisfy { $0.state == "compensated" }, "\(records.mapValues(\.state))")
        // Payment declined: nothing was charged, nothing reserved, nothing shipped.
        #expect(try saga.ledger("fail-payment") == ["charge:declined:0", "refund:nothing_to_refund:0"])
        #expect(try saga.reservation("fail-payment") == nil)
        // Out of stock (after its two retries): the charge is refunded.
        #expect(try saga.ledger("fail-inventory") == ["charge:charged:1000", "refund:refunded:1000"])
        #expect(try saga.reservation("fail-inventory") == nil)
        #expect(try saga.history("fail-inventory").filter { $0.event == "retry_scheduled" }.count == 2)
        // Carrier refused: reservation released and charge refunded, no shipment.
        #expect(try saga.reservation("fail-shipping") == "released")
        #expect(try saga.ledger("fail-shipping") == ["charge:charged:1000", "refund:refunded:1000"])
        #expect(try saga.shipment("fail-shipping") == nil)
        // Mailbox gone: shipment cancelled, reservation released, refunded.
        #expect(try saga.shipment("fail-notification") == "cancelled")
        #expect(try saga.reservation("fail-notification") == "released")
        #expect(try saga.ledger("fail-notification") == ["charge:charged:1000", "refund:refunded:1000"])
        for order in orders { #expect(try saga.notice(order.orderID) == "failure") }
        let report = try saga.check()
        #expect(report.ok, "\(report.violations)")
    }

    @Test(arguments: StoreBackend.allCases) func transientFailuresAreHealedByRetriesAfterTheConfiguredDelays(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        try await saga.submit([H.order("flaky", token: "tok_transient_2")])
        let record = try #require(try await saga.waitUntilTerminal(["flaky"])["flaky"])
        #expect(record.state == "completed")
        #expect(try saga.ledger("flaky") == ["charge:charged:1000"])
        let history = try saga.history("flaky")
        let retries = history.filter { $0.event == "retry_scheduled" }
        #expect(retries.map(\.topic) == ["payment.requested.retry.1", "payment.requested.retry.2"])
        #expect(retries.map(\.errorClass) == ["TransientError", "TransientError"])
        // fast.yaml: 0.1 s then 0.2 s. The request after each retry came no sooner than that.
        let inventoryRequest = try #require(history.first { $0.event == "requested" && $0.step == "inventory" })
        #expect(retries[1].at - retries[0].at >= 100)
        #expect(inventoryRequest.at - retries[1].at >= 200)
    }

    @Test(arguments: StoreBackend.allCases) func aHangingStepIsCancelledAtItsTimeoutAndOneThatStopsBeatingSooner(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        try await saga.submit([H.order("hangs", token: "tok_hang"), H.order("stalls", line1: "9 STALL Road")])
        let records = try await saga.waitUntilTerminal(["hangs", "stalls"])
        #expect(records["hangs"]?.state == "compensated")
        #expect(records["stalls"]?.state == "compensated")
        let hangs = try saga.history("hangs")
        let hangFailures = hangs.filter { $0.event == "retry_scheduled" || $0.event == "dead_lettered" }
        #expect(hangFailures.count == 4, "three retries, then the dead-letter topic")
        #expect(hangFailures.allSatisfy { $0.errorClass == "Timeout" })
        let firstRequest = try #require(hangs.first { $0.event == "requested" })
        #expect(hangFailures[0].at - firstRequest.at >= 1000, "cancelled at timeout_seconds 1, not before")
        #expect(try saga.ledger("hangs").filter { $0.hasPrefix("charge") }.isEmpty)
        let stalls = try saga.history("stalls").filter { $0.event == "retry_scheduled" || $0.event == "dead_lettered" }
        #expect(stalls.count == 4)
        #expect(stalls.allSatisfy { $0.errorClass == "HeartbeatTimeout" }, "\(stalls.map(\.errorClass))")
        // Stalling: the carrier reserved stock and took payment before it stalled; both undone.
        #expect(try saga.reservation("stalls") == "released")
        #expect(try saga.ledger("stalls") == ["charge:charged:1000", "refund:refunded:1000"])
        #expect(try saga.check().ok)
    }

    @Test(arguments: StoreBackend.allCases) func aRefundFailingAFewTimesIsRetriedUntilItSucceeds(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        try await saga.submit([H.order("refund-flaky", token: "tok_refund_fail_2", country: "XX")])
        let record = try #require(try await saga.waitUntilTerminal(["refund-flaky"])["refund-flaky"])
        #expect(record.state == "compensated")
        #expect(try saga.ledger("refund-flaky") == ["charge:charged:1000", "refund:refunded:1000"])
        #expect(try saga.history("refund-flaky").filter { $0.event == "compensation_retry_scheduled" }.count == 2)
        #expect(try saga.check().ok)
    }

    @Test(arguments: StoreBackend.allCases) func aRefundFailingPastItsCapParksTheOrderForManualReviewAndItStaysRedrivable(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        try await saga.submit([H.order("refund-broken", token: "tok_refund_fail_always", country: "XX")])
        let record = try #require(try await saga.waitUntilTerminal(["refund-broken"])["refund-broken"])
        #expect(record.state == "manual_review")
        #expect(saga.metric("fulfillment_manual_review_alerts_total") == 1)
        #expect(try saga.ledger("refund-broken") == ["charge:charged:1000"], "money still held: that is why an operator must look")
        let letters = DeadLetters(broker: saga.broker, store: saga.node.dispatcherStore!, topics: saga.configuration.topics)
        let parked = try await letters.letters(topic: "orders.manual-review", orderID: "refund-broken")
        #expect(parked.count == 1)
        #expect(parked[0].headers["reason"]?.contains("compensation failed past its retry cap") == true)
        let dry = try await letters.redrive(topics: ["orders.manual-review"], orderID: "refund-broken", dryRun: true)
        #expect(dry.redriven.count == 1)
        let redriven = try await letters.redrive(topics: ["orders.manual-review"], orderID: "refund-broken", dryRun: false)
        #expect(redriven.redriven.first?.headers["original-topic"] == "compensation.requested")
        // The redriven compensation runs again (and, the refund still failing, parks again).
        let deadline = ContinuousClock.now + .seconds(20)
        while try saga.history("refund-broken").filter({ $0.event == "manual_review" }).count < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try saga.history("refund-broken").contains { $0.event == "redriven" || $0.topic == "compensation.requested" && $0.event == "compensation_requested" })
        #expect(try saga.history("refund-broken").filter { $0.event == "manual_review" }.count == 2)
        let again = try await letters.redrive(topics: ["orders.manual-review"], orderID: "refund-broken", dryRun: true)
        #expect(again.redriven.count == 1, "the first letter is marked redriven; only the new one is pending")
    }

    @Test(arguments: StoreBackend.allCases) func theSameMessageDeliveredTwiceHasOneEffect(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        let order = H.order("twice", price: 33)
        let request = SagaMessages(topics: saga.configuration.topics).request(.payment, orderID: "twice", orderJSON: order.canonicalJSON(), priority: .standard)
        // The intake records the order; then the very same request is delivered twice more.
        try await saga.submit([order])
        try await saga.waitUntilTerminal(["twice"])
        _ = try await saga.broker.produce([request, request])
        try await Task.sleep(for: .milliseconds(500))
        try await saga.submit([order])  // and the user resubmits the same order: a no-op
        try await Task.sleep(for: .milliseconds(500))
        #expect(try saga.ledger("twice") == ["charge:charged:3300"])
        #expect(try saga.node.inventory!.connection.scalar("SELECT COUNT(*) FROM reservations WHERE order_id = 'twice'") == 1)
        #expect(try saga.node.notifications!.connection.scalar("SELECT COUNT(*) FROM outbox WHERE order_id = 'twice'") == 1)
        #expect(try saga.node.dispatcherStore!.order("twice")?.state == "completed")
        #expect(saga.metric("fulfillment_duplicates_total", ["step": "payment"]) >= 2, "the stored outcome was re-emitted")
        #expect(try saga.check().ok)
    }

    /// `bodyInTracker`: the tracker's row holds the order's body, as rows an earlier version
    /// wrote do; otherwise it is empty, the body being the intake's (`DispatcherStore.bodies`).
    @Test(arguments: StoreBackend.allCases, [false, true]) func theWatchdogRecoversAStuckOrderWithoutChargingItTwice(_ stores: StoreBackend, bodyInTracker: Bool) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        // A payment worker charged the order at the gateway and died before recording or
        // publishing anything; its message is gone. Only the watchdog can notice.
        let order = H.order("stuck", price: 42)
        _ = try await saga.node.gateway!.charge(idempotencyKey: "stuck:payment", orderID: "stuck", amountCents: 4200, currency: "USD", token: "tok_visa")
        let longAgo = UnixClock.nowMillis() - 60_000
        try saga.node.dispatcherStore!.intake.run("INSERT INTO submitted (order_id, body, created_at) VALUES ('stuck', ?, ?)", [.blob(order.canonicalJSON()), .integer(longAgo)])
        try saga.node.dispatcherStore!.connection.run(
            "INSERT INTO orders (order_id, body, amount_cents, units, tier, priority, state, created_at, updated_at) VALUES ('stuck', ?, 4200, 1, 'standard', 'standard', 'payment', ?, ?)",
            [.blob(bodyInTracker ? order.canonicalJSON() : []), .integer(longAgo), .integer(longAgo)])
        try saga.start()
        let record = try #require(try await saga.waitUntilTerminal(["stuck"], timeout: .seconds(30))["stuck"])
        #expect(record.state == "completed")
        #expect(record.recoveries >= 1)
        #expect(try saga.history("stuck").contains { $0.event == "recovered" && $0.step == "payment" })
        #expect(try saga.ledger("stuck") == ["charge:charged:4200"], "the recovery reused the idempotency key")
        #expect(try saga.check().ok)
    }

    /// The intake stored an order and died before its payment request reached the log: the
    /// watchdog requests it again, from where the intake read it, so the order's history
    /// starts with its acceptance like any other's.
    @Test(arguments: StoreBackend.allCases) func anOrderWhosePaymentRequestWasLostIsRequestedAgainAndItsHistoryStartsAtItsAcceptance(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        let order = H.order("lost", price: 7)
        let longAgo = UnixClock.nowMillis() - 600_000
        try saga.node.dispatcherStore!.intake.run(
            "INSERT INTO submitted (order_id, body, created_at, accepted_at, source) VALUES ('lost', ?, ?, ?, 'orders/4/17')",
            [.blob(order.canonicalJSON()), .integer(longAgo), .integer(longAgo)])
        try saga.start()
        let record = try #require(try await saga.waitUntilTerminal(["lost"], timeout: .seconds(60))["lost"])
        #expect(record.state == "completed")
        let history = try saga.history("lost")
        #expect(history.first?.event == "accepted", "\(history.map(\.event))")
        #expect(history.contains { $0.event == "recovered" && $0.step == "payment" }, "\(history.map(\.event))")
        #expect(try saga.check().ok)
    }

    @Test(arguments: StoreBackend.allCases) func aVIPOrderOvertakesABacklogOfStandardOrders(_ stores: StoreBackend) async throws {
        // A payment step slow enough (8 handlers, ~20 ms per charge: ~400 orders/s) that the
        // backlog piles up there, well behind the intake even in a debug build.
        var configuration = try SagaHarness.fastConfiguration()
        configuration.batchSize = 200
        configuration.concurrency = 8
        let slowGateway = FaultProfile(name: "slow", steps: [.payment: StepFaults(latencyMilliseconds: LatencyDistribution(p50: 20, p99: 25))])
        let saga = try await SagaHarness(configuration: configuration, faults: slowGateway, stores: stores)
        defer { Task { await saga.finish() } }
        let backlog = (0..<3000).map { "std-\($0)" }
        try await saga.submit(backlog.map { H.order($0) })
        try await saga.submit([H.order("vip-1", tier: .vip), H.order("big-spender", quantity: 2, price: 6000)])
        try saga.start()
        let vip = try await saga.waitUntilTerminal(["vip-1", "big-spender"], timeout: .seconds(120))
        let vipDone = vip.values.map { $0.finishedAt ?? .max }.max()!
        let standardDoneBefore = try saga.node.dispatcherStore!.connection.scalar(
            "SELECT COUNT(*) FROM orders WHERE order_id LIKE 'std-%' AND state = 'completed' AND finished_at <= ?", [.integer(vipDone)]) ?? 0
        #expect(vip.values.allSatisfy { $0.priority == "vip" && $0.state == "completed" })
        #expect(standardDoneBefore < 1500, "VIP orders finished while \(3000 - standardDoneBefore) standard orders were still waiting")
        try await saga.waitUntilTerminal(backlog, timeout: .seconds(180))
        #expect(try saga.check().ok)
    }

    @Test(arguments: StoreBackend.allCases) func everyMalformedOrderIsRejectedWithItsReasonAndNothingStalls(_ stores: StoreBackend) async throws {
        let saga = try await SagaHarness(stores: stores)
        defer { Task { await saga.finish() } }
        try saga.start()
        let good = String(decoding: H.order("good-1").canonicalJSON(), as: UTF8.self)
        let cases: [(String, String?, String)] = [
            ("{not json", nil, "not_json"),
            ("[1,2]", nil, "not_an_object"),
            (good.replacingOccurrences(of: "\"email\":\"buyer@example.com\",", with: ""), "bad-1", "missing_field"),
            (good.replacingOccurrences(of: "\"quantity\":1", with: "\"quantity\":\"1\""), "bad-2", "wrong_type"),
            (good.replacingOccurrences(of: "\"items\":[{\"quantity\":1,\"sku\":\"SKU-1\",\"unit_price\":10}]", with: "\"items\":[]"), "bad-3", "empty_items"),
            (good.replacingOccurrences(of: "\"quantity\":1", with: "\"quantity\":0"), "bad-4", "non_positive_quantity"),
            (good.replacingOccurrences(of: "\"unit_price\":10", with: "\"unit_price\":-10"), "bad-5", "non_positive_price"),
            (good.replacingOccurrences(of: "{\"currency\"", with: "{\"amount\":11,\"currency\""), "bad-6", "amount_mismatch"),
            (good.replacingOccurrences(of: "\"USD\"", with: "\"ABC\""), "bad-7", "unknown_currency"),
            (good.replacingOccurrences(of: "buyer@example.com", with: "buyer-at-example"), "bad-8", "bad_email"),
            ("{\"pad\":\"" + String(repeating: "x", count: 100_000) + "\"}", "bad-9", "payload_too_large"),
            (good.replacingOccurrences(of: "\"standard\"", with: "\"gold\""), "bad-10", "unknown_tier"),
            (good.replacingOccurrences(of: "\"unit_price\":10", with: "\"unit_price\":11"), "good-1", "duplicate_order_id"),
        ]
        try await saga.submit([H.order("good-1")])
        try await saga.waitUntilTerminal(["good-1"])
        for (payload, key, _) in cases { try await saga.submitRaw(Array(payload.utf8), key: key) }
        try await saga.submit([H.order("good-2")])
        try await saga.waitUntilTerminal(["good-2"])
        let deadline = ContinuousClock.now + .seconds(10)
        while try saga.node.dispatcherStore!.rejectionCount() < cases.count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let reasons = try saga.node.dispatcherStore!.intake.query("SELECT reason FROM rejections ORDER BY offset") { $0.text(0) }
        #expect(Set(reasons) == Set(cases.map(\.2)))
        #expect(reasons.count == cases.count)
        // The rejections are on orders.rejected too, as JSON with the reason.
        var rejected: [String] = []
        for p in 0..<saga.configuration.partitions {
            rejected += try await saga.broker.read(topic: "orders.rejected", partition: p, from: 0, maxRecords: 100).map(\.valueString)
        }
        #expect(rejected.count == cases.count)
        #expect(rejected.allSatisfy { $0.contains("\"reason\":") && $0.contains("\"message\":") })
        #expect(try saga.node.dispatcherStore!.order("good-1")?.amountCents == 1000, "the duplicate did not replace the original")
        #expect(try saga.check().ok)
    }
}
