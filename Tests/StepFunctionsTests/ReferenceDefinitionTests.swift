import Testing
import TestSupport
import SagaDomain
@testable import StepFunctions

/// The eleven AWS definitions in ../shared/reference/asl: each imports or is refused cleanly
/// (every reason with its path), and lint finds the gaps SOURCES.md describes for it.
@Suite(.enabled(if: Reference.available, Comment(rawValue: SharedReference.missing))) struct ReferenceDefinitionTests {
    enum Outcome {
        case imported(ASLDefinition, ASLImportResult)
        case refused(ASLDefinition, ASLImportRefusal)
        case invalid(ASLDefinitionError)
    }

    static func outcome(_ name: String) throws -> Outcome {
        let bytes = try Reference.bytes(name)
        let definition: ASLDefinition
        do {
            definition = try ASLDefinition.parse(bytes, source: name)
        } catch {
            return .invalid(error)
        }
        do {
            return .imported(definition, try ASLImport().run(definition, source: name))
        } catch {
            return .refused(definition, error)
        }
    }

    static func lint(_ name: String) throws -> [LintFinding] {
        switch try outcome(name) {
        case .imported(let definition, _), .refused(let definition, _): return SagaLint().findings(for: definition)
        case .invalid(let error):
            Issue.record("\(name) did not parse: \(error)")
            return []
        }
    }

    static func has(_ findings: [LintFinding], _ code: LintFinding.Code, _ state: String, _ severity: LintFinding.Severity? = nil, saying words: String? = nil) -> Bool {
        findings.contains { $0.code == code && $0.subject == state && (severity == nil || $0.severity == severity) && (words.map($0.message.contains) ?? true) }
    }

    @Test(arguments: Reference.names)
    func everyDefinitionImportsOrIsRefusedCleanly(name: String) throws {
        switch try Self.outcome(name) {
        case .imported(_, let result):
            #expect(try SagaConfiguration.parse(result.yaml, source: name) == result.configuration)
        case .refused(_, let refusal):
            #expect(!refusal.reasons.isEmpty)
            #expect(refusal.reasons.allSatisfy { $0.path.description.hasPrefix("$") && !$0.reason.isEmpty })
            #expect(refusal.description.split(separator: "\n").count == refusal.reasons.count + 1)
        case .invalid(let error):
            #expect(name == "invalid-jsonata-querylanguage-in-states.json", "\(error)")
        }
    }

    @Test func travelSagaIsRefusedForStepsThatAreNotOursAndItsUndosHaveNoExit() throws {
        guard case .refused(_, let refusal) = try Self.outcome("travel-reservation-saga.json") else { Issue.record("expected a refusal"); return }
        #expect(refusal.reasons.contains { $0.state == "ReserveCarRental" && $0.reason.contains("both \"ReserveFlight\" and \"ReserveCarRental\" map to inventory") })
        #expect(refusal.reasons.contains { $0.state == "ProcessPayment" && $0.reason.contains("payment → inventory") })
        let findings = try Self.lint("travel-reservation-saga.json")
        // The compensation steps retry but have no Catch: RefundPayment running out stops the chain.
        #expect(Self.has(findings, .compensationNoExit, "RefundPayment", .error, saying: "CancelRentalReservation and CancelFlightReservation never run"))
        #expect(Self.has(findings, .compensationNoExit, "CancelRentalReservation", .error))
        #expect(Self.has(findings, .compensationNoExit, "CancelFlightReservation", .error))
        #expect(!findings.contains { $0.code == .compensationNoRetry })
        // SendingSMSSuccess has no Retry or Catch: every booking is kept.
        #expect(Self.has(findings, .compensationGap, "SendingSMSSuccess", saying: "ProcessPayment (the charge)"))
        // No TimeoutSeconds anywhere.
        for state in ["ReserveFlight", "ReserveCarRental", "ProcessPayment", "ConfirmFlight", "ConfirmCarRental", "RefundPayment"] {
            #expect(Self.has(findings, .noTimeout, state))
        }
        // Compensation runs newest first, and the failed step is compensated too: no order finding.
        #expect(!findings.contains { $0.code == .undoOrder })
        #expect(findings.contains { $0.code == .notImportable })
    }

    @Test func travelSagaImportsOntoOurStepsWithAMapping() throws {
        let definition = try ASLDefinition.parse(try Reference.bytes("travel-reservation-saga.json"), source: "travel")
        let mapping = try StateMapping(parsing: ["ProcessPayment=payment,ReserveFlight=skip,ReserveCarRental=skip,ConfirmFlight=inventory,ConfirmCarRental=shipping", "CancelRentalReservation=undo:shipping,CancelFlightReservation=undo:inventory"])
        let result = try ASLImport(mapping: mapping).run(definition, source: "travel")
        let c = result.configuration
        #expect(c[.payment].retry == [RetryRule(errorEquals: ["TransientError"], intervalSeconds: 2, maxAttempts: 6, backoffRate: 2)])
        #expect(c[.payment].timeoutSeconds == PolicyExplanation.noTimeoutSeconds)
        #expect(c[.inventory].undo == [.payment, .shipping, .inventory], "after ConfirmFlight: RefundPayment → CancelRentalReservation → CancelFlightReservation")
        #expect(c.undoOrder(forFailureAt: .shipping) == [.payment, .shipping, .inventory])
        // The compensation steps' retriers: Lambda errors 6 × 2 s, then States.ALL with ASL's defaults.
        #expect(c.compensation.retry == [
            RetryRule(errorEquals: ["TransientError"], intervalSeconds: 2, maxAttempts: 6, backoffRate: 2),
            RetryRule(errorEquals: ["States.ALL"], intervalSeconds: 1, maxAttempts: 3, backoffRate: 2),
        ])
        #expect(result.notes.contains { $0.contains("RefundPayment has no Catch on States.ALL to a manual-review state") })
    }

    @Test func longLivedTransactionImportsAndItsBusinessOnlyCatchesAreGaps() throws {
        guard case .imported(let definition, let result) = try Self.outcome("order-long-lived-transaction.json") else { Issue.record("expected an import"); return }
        let c = result.configuration
        #expect(c[.payment].compensateOn == ["ErrProcessPayment"])
        #expect(c[.inventory].compensateOn == ["ErrReserveInventory"])
        #expect(c.undoOrder(forFailureAt: .inventory) == [.inventory, .payment])
        #expect(c[.payment].timeoutSeconds == 10)
        #expect(c[.inventory].retry == [RetryRule(errorEquals: ["TransientError"], intervalSeconds: 2, maxAttempts: 6, backoffRate: 2)])
        #expect(result.unmapped.map(\.name) == ["ProcessOrder", "UpdateOrderStatus"])
        #expect(result.unmapped[0].path.description == "$.States.ProcessOrder")
        #expect(result.notes.contains { $0.contains("TimeoutSeconds (15 s) is not carried") })
        let findings = SagaLint().findings(for: definition)
        // A States.Timeout in ReserveInventory leaves the order created and the payment debited.
        #expect(Self.has(findings, .compensationGap, "ReserveInventory", .error, saying: "catches only ErrReserveInventory: a States.Timeout"))
        #expect(Self.has(findings, .compensationGap, "sns:NotifySuccess", .error))
        // The machine's 15 s is shorter than one step's retry budget: 10 + 2+4+8+16+32+64.
        #expect(Self.has(findings, .timeoutBelowRetryBudget, "ReserveInventory", .error, saying: "(10 + 126 = 136 s)"))
        #expect(findings.contains { $0.code == .sagaOverBudget && $0.severity == .error })
        #expect(Self.has(findings, .compensationNoExit, "ReleaseInventory", .error, saying: "catches only ErrReleaseInventory"))
        #expect(findings.first { $0.subject == "sns:NotifySuccess" }?.path?.description.hasPrefix("$.States['sns:NotifySuccess']") == true)
        // The config it imports to says the same.
        let configFindings = SagaLint().findings(for: c)
        #expect(configFindings.contains { $0.code == .compensationGap && $0.subject == "inventory" && $0.severity == .error })
    }

    @Test func theJSONataTwinIsRefusedButLintedForTheSameGapsWithoutTheTimeoutOne() throws {
        guard case .refused(_, let refusal) = try Self.outcome("order-long-lived-transaction-jsonata.json") else { Issue.record("expected a refusal"); return }
        #expect(refusal.reasons.contains { $0.path.description == "$.QueryLanguage" && $0.reason.contains("JSONata definitions are not supported") })
        let findings = try Self.lint("order-long-lived-transaction-jsonata.json")
        #expect(Self.has(findings, .compensationGap, "ReserveInventory", .error))
        #expect(Self.has(findings, .compensationNoExit, "ProcessRefund", .error))
        // Its 600 s machine timeout covers the retry budget: the JSONPath version's gap is fixed.
        #expect(!findings.contains { $0.code == .timeoutBelowRetryBudget || $0.code == .sagaOverBudget })
    }

    @Test func checkoutIsRefusedForItsCallbacksAndAShippingFailureKeepsThePayment() throws {
        guard case .refused(_, let refusal) = try Self.outcome("checkout-callback-choice.json") else { Issue.record("expected a refusal"); return }
        #expect(refusal.reasons.contains { $0.state == "Third Party Payment Service HTTPS Endpoint" && $0.reason.contains("waitForTaskToken") })
        #expect(refusal.reasons.contains { $0.state == "Third Party Shipping Service HTTPS Endpoint" && $0.path.description == "$.States['Third Party Shipping Service HTTPS Endpoint'].Resource" })
        #expect(refusal.reasons.contains { $0.state == "Payment Validation" && $0.reason.contains("Choice") })
        let findings = try Self.lint("checkout-callback-choice.json")
        let shipping = findings.first { $0.code == .compensationGap && $0.subject == "Shipping Validation" }
        #expect(shipping?.severity == .error)
        #expect(shipping?.message.contains("Third Party Payment Service HTTPS Endpoint (the charge)") == true)
        #expect(shipping?.path?.description == "$.States['Shipping Validation'].Choices[0]")
        #expect(!findings.contains { $0.code == .compensationGap && $0.subject == "Payment Validation" }, "a failed payment has nothing to refund")
        #expect(Self.has(findings, .compensationGap, "Third Party Shipping Service HTTPS Endpoint", .error, saying: "no Catch"))
        #expect(Self.has(findings, .noTimeout, "Third Party Payment Service HTTPS Endpoint", .error, saying: "callback"))
        #expect(Self.has(findings, .noTimeout, "Third Party Shipping Service HTTPS Endpoint", .error))
    }

    @Test func curbsideIsRefusedAndAnUnansweredPickupKeepsThePickedItems() throws {
        guard case .refused(_, let refusal) = try Self.outcome("curbside-pickup-callbacks.json") else { Issue.record("expected a refusal"); return }
        #expect(Set(refusal.reasons.compactMap { $0.reason.contains("waitForTaskToken") ? $0.state : nil }) == ["SQS PickItem", "SNS ReadyPickup", "SNS DeliverToCurb"])
        let findings = try Self.lint("curbside-pickup-callbacks.json")
        #expect(Self.has(findings, .compensationGap, "SNS ReadyPickup", .error, saying: "SQS PickItem (the reservation)"))
        #expect(Self.has(findings, .noTimeout, "SQS PickItem", .error))
        #expect(Self.has(findings, .noTimeout, "SNS DeliverToCurb", .error))
        #expect(!Self.has(findings, .noTimeout, "SNS ReadyPickup"), "it has TimeoutSeconds 86400")
        // CustomerArrived? false restocks what was picked: that branch keeps nothing.
        #expect(!findings.contains { $0.code == .compensationGap && $0.subject == "CustomerArrived?" })
    }

    @Test func configBackupIsRefusedForItsMapsAndNeedsNoCompensation() throws {
        guard case .refused(_, let refusal) = try Self.outcome("config-backup-nested-map.json") else { Issue.record("expected a refusal"); return }
        #expect(refusal.reasons.map(\.state) == ["InputMapping"])
        #expect(refusal.reasons[0].reason.contains("Map"))
        let findings = try Self.lint("config-backup-nested-map.json")
        #expect(!findings.contains { $0.code == .compensationGap }, "\(findings.filter { $0.code == .compensationGap })")
        #expect(!SagaLint.hasErrors(findings))
        #expect(findings.contains { $0.code == .noTimeout && $0.path?.description == "$.States.InputMapping.ItemProcessor.States.MapResolverRulesAndAssociations.ItemProcessor.States.PutObjectUsingResourceId" })
    }

    @Test func emitAndWaitIsRefusedAndItsHeartbeatOnARequestResponseTaskIsReported() throws {
        guard case .refused(_, let refusal) = try Self.outcome("emit-and-wait-heartbeat.json") else { Issue.record("expected a refusal"); return }
        #expect(refusal.reasons.contains { $0.state == "Emit - PHASE 1" && $0.reason.contains("callback") })
        let findings = try Self.lint("emit-and-wait-heartbeat.json")
        #expect(Self.has(findings, .heartbeatWithoutCallback, "Emit - TIMEDOUT", .warning))
        #expect(!Self.has(findings, .heartbeatWithoutCallback, "Emit - PHASE 1"))
        // The timeout path ends `End: true`: the execution succeeds after a timeout.
        for phase in ["Emit - PHASE 1", "Emit - PHASE 2", "Emit - PHASE 3"] {
            #expect(Self.has(findings, .failureReportedAsSuccess, phase, .warning))
        }
    }

    @Test func webhookIsRefusedAndItsRetriedCallbackCanDeliverTwice() throws {
        guard case .refused(_, let refusal) = try Self.outcome("webhook-provider-callback.json") else { Issue.record("expected a refusal"); return }
        #expect(refusal.reasons.contains { $0.state == "Queue webhook call" })
        #expect(refusal.reasons.contains { $0.state == "Validate if webhook subscription exists" && $0.reason.contains("anything but the order's tier or amount") })
        let findings = try Self.lint("webhook-provider-callback.json")
        #expect(Self.has(findings, .retryWithoutIdempotencyKey, "Queue webhook call", .warning, saying: "sends its message again"))
        #expect(Self.has(findings, .failureReportedAsSuccess, "Queue webhook call"))
        #expect(Self.has(findings, .retryNonTransient, "Queue webhook call", saying: "States.ALL"))
    }

    @Test func idempotentWorkflowIsRefusedAndItsStuckLockAndEndlessPollAreReported() throws {
        guard case .refused(_, let refusal) = try Self.outcome("idempotent-parallel-wait.json") else { Issue.record("expected a refusal"); return }
        #expect(Set(refusal.reasons.compactMap(\.state)) == ["Your Workflow", "Still IN_PROGRESS, wait for 10s"])
        let findings = try Self.lint("idempotent-parallel-wait.json")
        #expect(Self.has(findings, .compensationGap, "Save execution results", saying: "Create and lock idempotency record"))
        #expect(Self.has(findings, .compensationNoExit, "Save failure", .error))
        #expect(Self.has(findings, .unboundedLoop, "Still IN_PROGRESS, wait for 10s", .warning))
        #expect(Self.has(findings, .errorNameNeverRaised, "Save execution results", saying: "DynamoDb.ThrottlingException"))
        #expect(Self.has(findings, .errorNameNeverRaised, "Get idempotency record from DynamoDB"))
        #expect(!Self.has(findings, .errorNameNeverRaised, "Create and lock idempotency record"), "the aws-sdk integration does raise DynamoDb.*")
    }

    @Test func theDistributedMapJSONataDefinitionIsRefusedWithEveryReasonAtOnce() throws {
        guard case .refused(_, let refusal) = try Self.outcome("unsupported-jsonata-distributed-map.json") else { Issue.record("expected a refusal"); return }
        #expect(refusal.reasons.contains { $0.path.description == "$.QueryLanguage" })
        #expect(refusal.reasons.contains { $0.state == "Iterate Containers" && $0.reason.contains("Distributed Map") })
        #expect(refusal.reasons.contains { $0.state == "Wait for the status" && $0.reason.contains("Wait") })
        let findings = try Self.lint("unsupported-jsonata-distributed-map.json")
        #expect(Self.has(findings, .unboundedLoop, "Wait for the status", .warning))
        #expect(findings.contains { $0.code == .retryNonTransient && $0.path?.description == "$.States['Iterate Containers'].ItemProcessor.States['Get location Summary'].Retry[0]" })
    }
}
