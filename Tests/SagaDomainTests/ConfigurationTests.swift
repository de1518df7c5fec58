import Foundation
import Testing
@testable import SagaDomain

@Suite struct ConfigurationTests {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test func anEmptyConfigurationIsTheSeedPolicy() throws {
        let c = try SagaConfiguration.parse("")
        #expect(c[.payment].retry.first?.errorEquals.contains("TransientError") == true)
        #expect((1...3).map { c[.payment].retry[0].delaySeconds(retry: $0) } == [2, 4, 8])
        let outOfStock = try #require(c[.inventory].rule(for: "OutOfStock"))
        #expect(outOfStock.maxAttempts == 2)
        #expect((1...2).map { outOfStock.delaySeconds(retry: $0) } == [3, 3])
        #expect(SagaStep.allCases.allSatisfy { c[$0].timeoutSeconds == 300 })
        #expect(c.vipAmountThreshold == 10_000)
    }

    @Test func theShippedConfigurationsParse() throws {
        let main = try SagaConfiguration.load(path: Self.repositoryRoot.appendingPathComponent("config/fulfillment.yaml").path)
        #expect(main == (try { var c = try SagaConfiguration.parse(""); c.steps[.shipping]?.heartbeatSeconds = 60; return c }()))
        let fast = try SagaConfiguration.load(path: Self.repositoryRoot.appendingPathComponent("config/profiles/fast.yaml").path)
        #expect(fast[.payment].timeoutSeconds == 1)
        #expect(fast[.shipping].heartbeatSeconds == 0.3)
    }

    @Test func fractionsOfASecondAreAccepted() throws {
        let c = try SagaConfiguration.parse("""
            steps:
              payment:
                timeout_seconds: 0.25
                retry:
                  - error_equals: [TransientError]
                    interval_seconds: 0.05
                    max_attempts: 2
            """)
        #expect(c[.payment].timeoutSeconds == 0.25)
        #expect(c[.payment].retry[0].intervalSeconds == 0.05)
    }

    @Test(arguments: [
        ("steps:\n  payment:\n    timeout_secs: 3\n", "line 3", "timeout_secs"),
        ("topics:\n  partitions: many\n", "line 2", "topics.partitions"),
        ("steps:\n  payment:\n    retry:\n      - interval_seconds: 1\n", "line 4", "error_equals"),
        ("steps:\n  shipment:\n    timeout_seconds: 1\n", "line 2", "shipment"),
        ("vip:\n  amount_threshold: -5\n", "line 2", "vip.amount_threshold"),
        ("steps:\n  payment:\n    on_exhausted: retry-forever\n", "line 3", "on_exhausted"),
        ("workers: [1, 2]\n", "line 1", "workers"),
        // compensate_on and undo (bad values, and keys the compensation's policy does not take).
        ("steps:\n  payment:\n    undo: [notification]\n", "line 3", "notification"),
        ("steps:\n  payment:\n    undo: [refund]\n", "line 3", "refund"),
        ("steps:\n  payment:\n    undo: [payment, payment]\n", "line 3", "twice"),
        ("steps:\n  payment:\n    undo: payment\n", "line 3", "steps.payment.undo"),
        ("steps:\n  payment:\n    compensate_on: OutOfStock\n", "line 3", "steps.payment.compensate_on"),
        ("compensation:\n  compensate_on: [States.ALL]\n", "line 2", "compensate_on"),
        ("compensation:\n  undo: [payment]\n", "line 2", "undo"),
    ])
    func errorsNameTheKeyAndTheLine(yaml: String, line: String, key: String) {
        do {
            _ = try SagaConfiguration.parse(yaml, source: "test.yaml")
            Issue.record("accepted \(yaml)")
        } catch let error as ConfigurationError {
            #expect(error.message.contains("test.yaml:\(line.dropFirst(5))"), "\(error.message)")
            #expect(error.message.contains(key), "\(error.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func invalidYAMLIsAClearError() {
        #expect(throws: ConfigurationError.self) { try SagaConfiguration.parse("steps: [unclosed", source: "bad.yaml") }
    }
}

@Suite struct RetryPolicyTests {
    let payment = SagaConfiguration()[.payment]

    @Test func paymentRetriesTransientErrorsThreeTimesAtTwoFourEightSeconds() {
        #expect(payment.decision(afterAttempt: 1, errorClass: "TransientError", random: 0.5) == .retry(tier: 1, delaySeconds: 2))
        #expect(payment.decision(afterAttempt: 2, errorClass: "TransientError", random: 0.5) == .retry(tier: 2, delaySeconds: 4))
        #expect(payment.decision(afterAttempt: 3, errorClass: "Timeout", random: 0.5) == .retry(tier: 3, delaySeconds: 8))
        #expect(payment.decision(afterAttempt: 4, errorClass: "TransientError", random: 0.5) == .deadLetter(exhausted: true))
    }

    @Test func nonRetryableAndUnmatchedErrorsGoStraightToTheDeadLetterTopic() {
        #expect(payment.decision(afterAttempt: 1, errorClass: "CardDeclined", random: 0.5) == .deadLetter(exhausted: false))
        #expect(payment.decision(afterAttempt: 1, errorClass: "SomethingElse", random: 0.5) == .deadLetter(exhausted: false))
    }

    @Test func fullJitterDrawsBetweenZeroAndTheNominalDelayAndCapsApply() {
        let rule = RetryRule(errorEquals: ["States.ALL"], intervalSeconds: 1, maxAttempts: 6, backoffRate: 3, maxDelaySeconds: 10, jitter: .full)
        let policy = StepPolicy(retry: [rule])
        #expect(policy.decision(afterAttempt: 2, errorClass: "X", random: 0.25) == .retry(tier: 2, delaySeconds: 0.75))
        #expect(rule.delaySeconds(retry: 4) == 10, "27 s capped at 10 s")
        #expect(policy.tierDelaySeconds(4) == 10)
    }

    @Test func theStepBudgetIsEveryAttemptToItsTimeoutPlusEveryDelay() {
        // The seed's arithmetic: 60 s attempts retried after 2 s and 4 s: 60+2+60+4+60.
        let policy = StepPolicy(retry: [RetryRule(errorEquals: ["States.TaskFailed"], intervalSeconds: 2, maxAttempts: 2, backoffRate: 2)], timeoutSeconds: 60)
        #expect(policy.budgetSeconds == 186)
    }

    @Test func undoingAFailedStepUndoesItAndEverythingBeforeItNewestFirst() {
        #expect(SagaStep.payment.undoOrderOnFailure == [.payment])
        #expect(SagaStep.inventory.undoOrderOnFailure == [.inventory, .payment])
        #expect(SagaStep.shipping.undoOrderOnFailure == [.shipping, .inventory, .payment])
        #expect(SagaStep.notification.undoOrderOnFailure == [.shipping, .inventory, .payment])
    }

    @Test func theGraphAndTheExplanationCoverEveryStepTierAndDeadLetterTopic() {
        let configuration = SagaConfiguration()
        let mermaid = SagaGraph(configuration: configuration).mermaid()
        let dot = SagaGraph(configuration: configuration).dot()
        for topic in ["payment.requested.retry.3", "inventory.requested.dlt", "orders.manual-review", "compensation.requested", "payment.requested.priority"] {
            #expect(mermaid.contains(topic))
            #expect(dot.contains(topic))
        }
        #expect(mermaid.contains("retry 2 after 4 s"))
        let text = PolicyExplanation(configuration: configuration).text()
        #expect(text.contains("after 2 s, 4 s, 8 s"))
        #expect(text.contains("manual-review"))
    }
}
