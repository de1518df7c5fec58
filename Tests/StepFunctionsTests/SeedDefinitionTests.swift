import Testing
import SagaDomain
@testable import StepFunctions

/// The seed's definition, the one our users start from: it imports, `explain` says it in
/// the seed's words, lint finds the gaps the issue names, and once they are fixed in the
/// imported YAML it lints clean of errors.
@Suite struct SeedDefinitionTests {
    let definition: ASLDefinition
    let imported: ASLImportResult

    init() throws {
        definition = try ASLDefinition.parse(Reference.seed, source: "seed.json")
        imported = try ASLImport().run(definition, source: "seed.json")
    }

    @Test func tasksBecomeStepsByTheirNamesAndTheSloppyResources() {
        #expect(imported.mapped.contains(.init(name: "ValidatePayment", path: ASLPath.root / "States" / "ValidatePayment", role: .step(.payment))))
        #expect(imported.mapped.contains { $0.name == "ReserveInventory" && $0.role == .step(.inventory) })
        #expect(imported.mapped.contains { $0.name == "PrepareShipment" && $0.role == .step(.shipping) })
        #expect(imported.mapped.contains { $0.name == "NotifyCustomer" && $0.role == .step(.notification) })
        #expect(imported.mapped.contains { $0.name == "RefundAndFail" && $0.role == .undo(.payment) })
        #expect(imported.mapped.contains { $0.name == "ReleaseInventory" && $0.role == .undo(.inventory) })
        #expect(imported.unmapped.isEmpty)
    }

    @Test func retryTimeoutAndCatchCarryOverFieldForField() {
        let c = imported.configuration
        #expect(c[.payment].retry == [RetryRule(errorEquals: ["TransientError", "HeartbeatTimeout"], intervalSeconds: 2, maxAttempts: 3, backoffRate: 2)])
        #expect(c[.payment].timeoutSeconds == 300)
        #expect(c[.payment].compensateOn == ["States.ALL"])
        #expect(c[.payment].undo == [], "PaymentFailed → OrderFailed undoes nothing")
        #expect(c[.inventory].retry == [RetryRule(errorEquals: ["OutOfStock"], intervalSeconds: 3, maxAttempts: 2, backoffRate: 1)])
        #expect(c[.inventory].compensateOn == ["OutOfStock"])
        #expect(c[.inventory].undo == [.payment, .inventory], "RefundAndFail → ReleaseInventory")
        #expect(c[.shipping].retry.isEmpty && c[.shipping].compensateOn.isEmpty)
        #expect(c[.notification].compensateOn.isEmpty)
        #expect(c[.notification].timeoutSeconds == PolicyExplanation.noTimeoutSeconds, "no TimeoutSeconds: ASL's 99999999 s")
        #expect(c.compensation.retry.isEmpty, "the refund and release have no Retry")
        #expect(c.vipAmountThreshold == 10_000)
        #expect(c.outcome(ofFailureAt: .inventory, errorClass: "OutOfStock") == .compensate(undo: [.payment, .inventory]))
        guard case .park = c.outcome(ofFailureAt: .inventory, errorClass: "Timeout") else {
            Issue.record("a timeout in ReserveInventory is uncaught in the seed: it must park")
            return
        }
    }

    @Test func explainSaysTheImportedConfigurationInTheSeedsWords() {
        let text = PolicyExplanation(configuration: imported.configuration).text()
        #expect(text.contains("OutOfStock: the order is compensated: refund (payment) → release (inventory). That is not newest effect first."))
        #expect(text.contains("Any other error parks the order in orders.manual-review; the charge and the reservation stay until an operator acts."))
        #expect(text.contains("Whatever the error, the order is then parked in orders.manual-review; the charge, the reservation and the shipment stay until an operator acts."))
        #expect(text.contains("Attempts have no timeout"))
    }

    @Test func theYAMLReadsBackToTheSameConfigurationAndSaysWhereItCameFrom() throws {
        let yaml = imported.yaml
        #expect(yaml.hasPrefix("# Imported from seed.json by `fulfillment asl import`."))
        #expect(try SagaConfiguration.parse(yaml, source: "imported.yaml") == imported.configuration)
        #expect(Set((0..<5).map { _ in (try? ASLImport().run(definition))?.yaml ?? "" }).count == 1, "the same file every time, notes in order")
        if Reference.available {
            let travel = try ASLDefinition.parse(try Reference.bytes("order-long-lived-transaction.json"))
            #expect(Set((0..<5).map { _ in (try? ASLImport().run(travel))?.yaml ?? "" }).count == 1, "the same file every time, notes in order")
        }
    }

    @Test func lintFindsTheGapsTheIssueNames() {
        let findings = SagaLint().findings(for: definition)
        func has(_ code: LintFinding.Code, _ state: String, _ severity: LintFinding.Severity = .error) -> Bool {
            findings.contains { $0.code == code && $0.subject == state && $0.severity == severity }
        }
        #expect(has(.compensationGap, "PrepareShipment"))
        #expect(has(.compensationGap, "NotifyCustomer"))
        let reserve = findings.first { $0.code == .compensationGap && $0.subject == "ReserveInventory" && $0.severity == .error }
        #expect(reserve?.message.contains("catches only OutOfStock: a States.Timeout") == true)
        #expect(reserve?.message.contains("ValidatePayment (the charge) kept") == true)
        #expect(reserve?.path?.description == "$.States.ReserveInventory.Catch")
        #expect(has(.compensationNoRetry, "RefundAndFail"))
        #expect(has(.compensationNoRetry, "ReleaseInventory"))
        #expect(findings.first { $0.code == .compensationNoRetry && $0.subject == "RefundAndFail" }?.message.contains("ReleaseInventory never runs") == true)
        #expect(has(.undoOrder, "ReserveInventory", .warning))
        #expect(has(.noTimeout, "NotifyCustomer", .warning))
        #expect(has(.unknownResource, "ReserveInventory", .warning))
        #expect(!findings.contains { $0.code == .compensationGap && $0.subject == "ValidatePayment" && $0.severity == .error }, "ValidatePayment catches States.ALL")
        let worst = findings.first { $0.code == .sagaWorstCase }
        #expect(worst?.message.contains("ValidatePayment: 300 + 2 + 300 + 4 + 300 + 8 + 300 = 1214 s") == true)
    }

    @Test func theImportedConfigurationLintsWithTheSameGaps() {
        let findings = SagaLint().findings(for: imported.configuration)
        #expect(findings.contains { $0.code == .compensationGap && $0.subject == "inventory" && $0.severity == .error && $0.message.contains("a timeout keeps the charge") })
        #expect(findings.contains { $0.code == .compensationGap && $0.subject == "shipping" && $0.severity == .error })
        #expect(findings.contains { $0.code == .compensationGap && $0.subject == "notification" && $0.severity == .error })
        #expect(findings.contains { $0.code == .compensationNoRetry && $0.subject == "compensation" })
        #expect(findings.contains { $0.code == .undoOrder && $0.subject == "inventory" })
        #expect(findings.contains { $0.code == .noTimeout && $0.subject == "notification" })
    }

    @Test func fixingTheGapsInTheImportedYAMLLintsCleanOfErrors() throws {
        var yaml = imported.yaml
        func edit(_ old: String, _ new: String) {
            #expect(yaml.contains(old), "the imported YAML holds \(old)")
            yaml = yaml.replacingOccurrences(of: old, with: new)
        }
        // Every error compensates, newest effect first; undo the failed charge too.
        edit("    compensate_on: [OutOfStock]\n    undo: [payment, inventory]\n", "")
        edit("    undo: []\n", "")
        edit("    compensate_on: []\n", "")
        edit("  notification:\n    timeout_seconds: 99999999\n", "  notification:\n    timeout_seconds: 300\n")
        edit("compensation:\n  timeout_seconds: 99999999\n  retry: []\n",
             "compensation:\n  timeout_seconds: 60\n  retry:\n    - {error_equals: [States.ALL], interval_seconds: 1, max_attempts: 5, max_delay_seconds: 30}\n")
        let fixed = try SagaConfiguration.parse(yaml, source: "fixed.yaml")
        let findings = SagaLint().findings(for: fixed)
        #expect(!SagaLint.hasErrors(findings), "\(findings.filter { $0.severity == .error })")
        #expect(fixed.outcome(ofFailureAt: .inventory, errorClass: "Timeout") == .compensate(undo: [.inventory, .payment]))
        #expect(fixed.outcome(ofFailureAt: .notification, errorClass: "MailboxUnavailable") == .compensate(undo: [.shipping, .inventory, .payment]))
    }
}
