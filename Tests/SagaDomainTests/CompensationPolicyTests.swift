import Testing
@testable import SagaDomain

/// `compensate_on` and `undo`: parsed with errors that name key and line, turned into the
/// driver's one decision, and explained in the seed's words; the defaults change nothing.
@Suite struct CompensationPolicyTests {
    @Test func theDefaultsCompensateEveryErrorWithTheStepsUndoOrder() {
        let c = SagaConfiguration()
        for step in SagaStep.allCases {
            #expect(c[step].compensateOn == ["States.ALL"])
            #expect(c[step].undo == nil)
            #expect(c.outcome(ofFailureAt: step, errorClass: "Anything") == .compensate(undo: step.undoOrderOnFailure))
        }
    }

    @Test func compensateOnAndUndoAreReadPerStep() throws {
        let c = try SagaConfiguration.parse("""
            steps:
              inventory:
                compensate_on: [OutOfStock, Timeout]
                undo: [payment, inventory]
              shipping:
                on_exhausted: park
            """)
        #expect(c.outcome(ofFailureAt: .inventory, errorClass: "OutOfStock") == .compensate(undo: [.payment, .inventory]))
        #expect(c.outcome(ofFailureAt: .inventory, errorClass: "Timeout") == .compensate(undo: [.payment, .inventory]))
        guard case .park(let reason) = c.outcome(ofFailureAt: .inventory, errorClass: "TransientError") else {
            Issue.record("an error outside compensate_on parks")
            return
        }
        #expect(reason.contains("not in its compensate_on [OutOfStock, Timeout]"))
        guard case .park = c.outcome(ofFailureAt: .shipping, errorClass: "States.ALL") else {
            Issue.record("on_exhausted: park parks whatever the error")
            return
        }
        #expect(c.undoOrder(forFailureAt: .payment) == [.payment])
    }

    @Test func theDefaultExplanationIsWordForWordWhatItWas() {
        let text = PolicyExplanation(configuration: SagaConfiguration()).text()
        #expect(text.contains("  - The order is then compensated: refund (payment), newest effect first; undoing something that never happened is a no-op."))
        #expect(text.contains("  - The order is then compensated: release (inventory) → refund (payment), newest effect first; undoing something that never happened is a no-op."))
        #expect(text.contains("Compensation (topic compensation.requested): cancel shipment → release inventory → refund payment, then one failure notice to the customer"))
        #expect(!text.contains("parks the order"))
    }

    @Test func explainSaysWhichErrorsCompensateWhatAndWhatStaysWhenTheRestPark() throws {
        let c = try SagaConfiguration.parse("steps:\n  inventory:\n    compensate_on: [OutOfStock]\n    undo: [payment, inventory]\n  shipping:\n    undo: [shipping, payment]\n")
        let text = PolicyExplanation(configuration: c).text()
        #expect(text.contains("  - OutOfStock: the order is compensated: refund (payment) → release (inventory). That is not newest effect first."))
        #expect(text.contains("  - Any other error parks the order in orders.manual-review; the charge and the reservation stay until an operator acts."))
        #expect(text.contains("  - The order is then compensated: cancel shipment (shipping) → refund (payment). The reservation is not undone."))
        #expect(text.contains("the undos listed above for the step that failed"))
        let graph = SagaGraph(configuration: c).mermaid()
        #expect(graph.contains("OutOfStock: compensate (refund → release); other errors: park"))
    }
}
