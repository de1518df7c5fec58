import Messaging
import SagaDomain
@testable import SagaRuntime
import Testing

@Suite struct RetryRouterTests {
    let topics = SagaTopics()

    func message(attempt: Int, extraHeaders: [RecordHeader] = []) -> InboundMessage {
        var headers = SagaMessages.headers(orderID: "o-1", key: "o-1:payment", step: "payment", attempt: attempt, priority: .vip)
        headers += extraHeaders
        return InboundMessage(record: ConsumerRecord(
            topic: "payment.requested.priority", partition: 3, offset: 42, timestamp: 1000, key: Array("o-1".utf8), value: Array("{}".utf8), headers: headers))
    }

    var router: RetryRouter {
        let policy = SagaConfiguration()[.payment]
        return RetryRouter(policy: policy, retryTopic: { [topics] in topics.retry(.payment, tier: $0) }, deadLetterTopic: topics.deadLetter(.payment))
    }

    @Test func aTransientFailureGoesToTheNextTierWithTheFailureHeadersOfTheDesign() {
        let routed = router.route(message(attempt: 1), failure: StepFailure("TransientError", "503"), now: 50_000, random: 0.3)
        #expect(routed.topic == "payment.requested.retry.1")
        #expect(routed.key == Array("o-1".utf8))
        let h = Dictionary(routed.headers.map { ($0.key, $0.stringValue) }, uniquingKeysWith: { _, last in last })
        #expect(h["attempt"] == "2")
        #expect(h["original-topic"] == "payment.requested.priority")
        #expect(h["original-partition"] == "3")
        #expect(h["original-offset"] == "42")
        #expect(h["error-class"] == "TransientError")
        #expect(h["error-message"] == "503")
        #expect(h["failed-at"] == "50000")
        #expect(h["idempotency-key"] == "o-1:payment")
        #expect(h["saga-id"] == "saga-o-1")
        #expect(h["priority"] == "vip")
        #expect(routed.timestamp == 50_000, "no jitter: due exactly at the tier's delay")
    }

    @Test func theThirdRetryWaitsInTierThreeAndTheFourthFailureIsDeadLettered() {
        let third = router.route(message(attempt: 3), failure: StepFailure("Timeout", "slow"), now: 0, random: 0)
        #expect(third.topic == "payment.requested.retry.3")
        let fourth = router.route(message(attempt: 4), failure: StepFailure("Timeout", "slow"), now: 0, random: 0)
        #expect(fourth.topic == "payment.requested.dlt")
        #expect(fourth.headers.contains(RecordHeader("retries-exhausted", "true")))
    }

    @Test func aRetryKeepsTheOriginalPositionOfTheFirstFailure() {
        let retried = message(attempt: 2, extraHeaders: [
            RecordHeader("original-topic", "payment.requested"), RecordHeader("original-partition", "1"), RecordHeader("original-offset", "7"),
        ])
        let routed = router.route(retried, failure: StepFailure("TransientError", "again"), now: 0, random: 0)
        #expect(routed.headers.filter { $0.key == "original-offset" }.map(\.stringValue) == ["7"])
    }

    @Test func aDeclinedCardIsDeadLetteredAtOnce() {
        let routed = router.route(message(attempt: 1), failure: StepFailure("CardDeclined", "no"), now: 0, random: 0)
        #expect(routed.topic == "payment.requested.dlt")
        #expect(routed.headers.contains(RecordHeader("retries-exhausted", "false")))
    }

    @Test func jitterBackdatesTheRecordSoItFallsDueEarlierWithinTheTier() {
        let rule = RetryRule(errorEquals: ["States.ALL"], intervalSeconds: 2, maxAttempts: 3, backoffRate: 2, jitter: .full)
        let jittery = RetryRouter(policy: StepPolicy(retry: [rule]), retryTopic: { "t.retry.\($0)" }, deadLetterTopic: "t.dlt")
        let routed = jittery.route(message(attempt: 2), failure: StepFailure("X", "x"), now: 100_000, random: 0.25)
        // Tier 2 holds records 4 s; a quarter of that is wanted, so the timestamp moves 3 s back.
        #expect(routed.topic == "t.retry.2")
        #expect(routed.timestamp == 97_000)
    }
}
