import Foundation
import Testing
import SagaDomain
@testable import StepFunctions

/// The lint over a configuration: the shipped one is clean of errors, and each finding
/// fires on the configuration that earns it.
@Suite struct ConfigurationLintTests {
    func findings(_ yaml: String, budget: Double? = nil) throws -> [LintFinding] {
        SagaLint(sagaBudgetSeconds: budget).findings(for: try SagaConfiguration.parse(yaml, source: "test.yaml"))
    }

    func has(_ findings: [LintFinding], _ code: LintFinding.Code, _ subject: String, _ severity: LintFinding.Severity) -> Bool {
        findings.contains { $0.code == code && $0.subject == subject && $0.severity == severity }
    }

    @Test func theShippedConfigurationHasNoErrorsOrWarnings() throws {
        let findings = SagaLint().findings(for: try SagaConfiguration.load(path: Reference.repositoryRoot.appendingPathComponent("config/fulfillment.yaml").path))
        #expect(findings.allSatisfy { $0.severity == .info }, "\(findings)")
        #expect(has(findings, .retryNonTransient, "inventory", .info), "OutOfStock is retried twice, on purpose")
        #expect(findings.first { $0.code == .sagaWorstCase }?.message.contains("payment: 300 + 2 + 300 + 4 + 300 + 8 + 300 = 1214 s") == true)
    }

    @Test func theSeedsCascadingTimeoutArithmeticIsShown() {
        let rule = RetryRule(errorEquals: ["States.TaskFailed"], intervalSeconds: 2, maxAttempts: 2, backoffRate: 2)
        let worst = SagaLint.worstCase(timeout: 60, rules: [rule])
        #expect(worst.arithmetic == "60 + 2 + 60 + 4 + 60 = 186 s")
        #expect(worst.seconds == StepPolicy(retry: [rule], timeoutSeconds: 60).budgetSeconds)
        let long = SagaLint.worstCase(timeout: 10, rules: [RetryRule(errorEquals: ["X"], intervalSeconds: 2, maxAttempts: 6, backoffRate: 2)])
        #expect(long.arithmetic == "7 × 10 + 126 of retry delays = 196 s")
        let capped = RetryRule(errorEquals: ["X"], intervalSeconds: 1, maxAttempts: 99_999_999, backoffRate: 2, maxDelaySeconds: 30)
        #expect(capped.totalDelaySeconds == 31 + (99_999_999 - 5) * 30, "1+2+4+8+16, then 30 s each: summed without stepping through them")
    }

    @Test func aPartialCompensateOnKeepsEarlierEffectsAndIsAnError() throws {
        let found = try findings("steps:\n  shipping:\n    compensate_on: [UnsupportedDestination]\n")
        let gap = found.first { $0.code == .compensationGap && $0.subject == "shipping" }
        #expect(gap?.severity == .error)
        #expect(gap?.message.contains("the charge, the reservation and the shipment stay until an operator acts (a timeout keeps the charge)") == true)
        let first = try findings("steps:\n  payment:\n    compensate_on: [CardDeclined]\n")
        #expect(has(first, .compensationGap, "payment", .warning), "payment has no earlier effect: only its own may be half done")
        #expect(!SagaLint.hasErrors(first))
    }

    @Test func anUndoListMissingAnEarlierEffectOrOutOfOrderIsFound() throws {
        let found = try findings("steps:\n  shipping:\n    undo: [shipping, payment]\n  inventory:\n    undo: [payment, inventory]\n")
        #expect(found.contains { $0.code == .compensationGap && $0.subject == "shipping" && $0.severity == .error && $0.message.contains("the reservation") })
        #expect(has(found, .undoOrder, "inventory", .warning))
        #expect(!has(found, .undoOrder, "shipping", .warning))
    }

    @Test func compensationWithoutRetriesIsAnError() throws {
        #expect(has(try findings("compensation:\n  retry: []\n"), .compensationNoRetry, "compensation", .error))
        #expect(has(try findings("compensation:\n  retry:\n    - {error_equals: [States.ALL], max_attempts: 0}\n"), .compensationNoRetry, "compensation", .error))
    }

    @Test func parkingEveryFailureIsAWarningNotAGap() throws {
        let found = try findings("steps:\n  inventory:\n    on_exhausted: park\n")
        #expect(has(found, .parksEveryFailure, "inventory", .warning))
        #expect(!found.contains { $0.code == .compensationGap })
    }

    @Test func timeoutsHeartbeatsAndBudgets() throws {
        let found = try findings("steps:\n  shipping:\n    timeout_seconds: 30\n    heartbeat_seconds: 30\n  notification:\n    timeout_seconds: 99999999\n", budget: 600)
        #expect(has(found, .heartbeatNotBelowTimeout, "shipping", .error))
        #expect(has(found, .noTimeout, "notification", .warning))
        #expect(has(found, .sagaOverBudget, "saga", .warning))
        #expect(!has(try findings("", budget: 10_000), .sagaOverBudget, "saga", .warning), "4856 s is within 10000 s")
    }

    @Test func statesAllAheadOfSpecificErrorsAndRetriedBusinessErrors() throws {
        let found = try findings("""
            steps:
              payment:
                non_retryable: []
                retry:
                  - {error_equals: [States.ALL], max_attempts: 3}
                  - {error_equals: [CardDeclined], max_attempts: 5}
              inventory:
                compensate_on: [States.ALL, OutOfStock]
                retry:
                  - {error_equals: [OutOfStock], max_attempts: 8}
            """)
        #expect(has(found, .catchAllFirst, "payment", .warning))
        #expect(has(found, .catchAllFirst, "inventory", .warning))
        #expect(has(found, .retryNonTransient, "payment", .warning), "States.ALL with nothing non-retryable retries a declined card")
        #expect(found.contains { $0.code == .retryNonTransient && $0.subject == "inventory" && $0.severity == .warning && $0.message.contains("OutOfStock 8 times") })
    }

    @Test func findingsEncodeForJSONOutput() throws {
        let finding = LintFinding(.error, .compensationGap, "ReserveInventory", path: ASLPath.root / "States" / "ReserveInventory" / "Catch", "why")
        let data = try JSONEncoder().encode(finding)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""code":"compensation-gap""#))
        #expect(text.contains(#""path":"$.States.ReserveInventory.Catch""#))
        #expect(try JSONDecoder().decode(LintFinding.self, from: data) == finding)
    }
}
