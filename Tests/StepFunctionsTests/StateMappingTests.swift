import Testing
import SagaDomain
@testable import StepFunctions

@Suite struct StateMappingTests {
    @Test func entriesNameAStateAndARoleAndCommasInNamesAreEscaped() throws {
        let mapping = try StateMapping(parsing: [#"ValidatePayment=payment,RefundAndFail=undo:payment"#, #"Set Order\, Payment and Shipping Status=skip, Escalate = manual-review"#])
        #expect(mapping["ValidatePayment"] == .step(.payment))
        #expect(mapping["RefundAndFail"] == .undo(.payment))
        #expect(mapping["Set Order, Payment and Shipping Status"] == .skip)
        #expect(mapping["Escalate"] == .manualReview)
        #expect(mapping["a=b"] == nil)
        #expect(try StateMapping(parsing: ["a=b=shipping"])["a=b"] == .step(.shipping), "the name is everything before the last '='")
    }

    @Test(arguments: ["ValidatePayment", "X=refund", "X=undo:notification", "=payment", "X=payment,X=inventory"])
    func unreadableEntriesAreErrorsThatSayWhich(value: String) {
        #expect(throws: StateMappingError.self) { try StateMapping(parsing: [value]) }
    }

    @Test func aMappingOverridesTheNameHeuristics() throws {
        let definition = try ASLDefinition.parse(Reference.seed, source: "seed")
        let mapping = try StateMapping(parsing: ["NotifyCustomer=skip"])
        let result = try ASLImport(mapping: mapping).run(definition, source: "seed")
        #expect(result.configuration[.notification] == SagaConfiguration()[.notification], "no state maps to notification: it keeps its base policy")
        #expect(result.notes.contains { $0.contains("No state maps to notification") })
    }

    @Test func aStateNoHeuristicPlacesIsListedByNameAndPath() throws {
        let definition = try ASLDefinition.parse(#"{"StartAt": "Audit", "States": {"Audit": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "audit-log"}, "Next": "Charge"}, "Charge": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 30, "End": true}}}"#)
        let result = try ASLImport().run(definition)
        #expect(result.unmapped.map(\.description) == [#""Audit" at $.States.Audit: no step matches its name or function; map it with --map 'Audit=payment' (or inventory, shipping, notification, skip)"#])
        #expect(result.configuration[.payment].timeoutSeconds == 30)
        #expect(result.yaml.contains("#   - \"Audit\" at $.States.Audit"))
    }
}
