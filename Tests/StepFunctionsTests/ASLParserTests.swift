import Testing
import TestSupport
import SagaDomain
@testable import StepFunctions

/// Invalid definitions are answered with every problem at once, each with its JSON path,
/// the way statelint reports, and never with a crash.
@Suite struct ASLParserTests {
    func problems(_ text: String) -> [ASLProblem] {
        do {
            _ = try ASLDefinition.parse(text, source: "test.json")
            return []
        } catch {
            return error.problems
        }
    }

    func has(_ problems: [ASLProblem], _ code: ASLProblem.Code, at path: String) -> Bool {
        problems.contains { $0.code == code && $0.path.description == path }
    }

    @Test func everyProblemIsListedAtOnceWithItsPath() {
        let found = problems(#"""
            {"StartAt": "A", "States": {
              "A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Missing",
                    "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["Oops"], "MaxAttempts": "three"}],
                    "Catch": [{"ErrorEquals": ["States.ALL", "Other"], "Next": "B"}]},
              "B": {"Type": "Pass"},
              "C": {"Type": "Succeed"},
              "B": {"Type": "Succeed"},
              "D": {"Type": "Wait", "Seconds": 5, "Next": "C", "End": true},
              "E": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": "y", "Next": "Nowhere"}], "Default": "C"},
              "F": {"Type": "Task", "Resource": 42, "End": true, "TimeoutSeconds": 1.5}
            }}
            """#)
        #expect(has(found, .missingTransitionTarget, at: "$.States.A.Next"))
        #expect(has(found, .statesAllNotLast, at: "$.States.A.Retry[0].ErrorEquals"))
        #expect(has(found, .schema, at: "$.States.A.Retry[1].MaxAttempts"))
        #expect(has(found, .statesAllNotAlone, at: "$.States.A.Catch[0].ErrorEquals"))
        #expect(has(found, .missingNextOrEnd, at: "$.States.B"))
        #expect(has(found, .duplicateStateName, at: "$.States.B"))
        #expect(has(found, .unreachableState, at: "$.States.C"))
        #expect(has(found, .unreachableState, at: "$.States.D"))
        #expect(has(found, .nextAndEnd, at: "$.States.D"))
        #expect(has(found, .missingTransitionTarget, at: "$.States.E.Choices[0].Next"))
        #expect(has(found, .schema, at: "$.States.F.Resource"))
        #expect(has(found, .schema, at: "$.States.F.TimeoutSeconds"))
        #expect(found.count >= 12)
    }

    @Test func theErrorDescriptionListsEveryProblemOnItsOwnLine() throws {
        let error = try #require(throws: ASLDefinitionError.self) {
            try ASLDefinition.parse(#"{"StartAt": "pass1", "States": {"pass1": {"Type": "Pass", "Next": "pass3"}, "pass2": {"Type": "Pass", "End": true}}}"#, source: "localstack.json")
        }
        // The LocalStack issue's definition, and AWS's own two messages for it.
        #expect(error.description.contains("MISSING_TRANSITION_TARGET: Missing 'Next' target: pass3 at $.States.pass1.Next"))
        #expect(error.description.contains(#"UNREACHABLE_STATE: State "pass2" is not reachable. at $.States.pass2"#))
        #expect(error.description.split(separator: "\n").count == 3)
    }

    @Test(arguments: [
        ("", ASLProblem.Code.notJSON, "$"),
        ("{\"StartAt\": ", .notJSON, "$"),
        ("[1, 2]", .schema, "$"),
        ("\"just a string\"", .schema, "$"),
        ("{\"States\": {\"A\": {\"Type\": \"Succeed\"}}}", .schema, "$.StartAt"),
        ("{\"StartAt\": \"A\"}", .schema, "$.States"),
        ("{\"StartAt\": \"A\", \"States\": []}", .schema, "$.States"),
        ("{\"StartAt\": \"B\", \"States\": {\"A\": {\"Type\": \"Succeed\"}}}", .missingTransitionTarget, "$.StartAt"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Teleport\", \"End\": true}}}", .schema, "$.States.A.Type"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Succeed\", \"Nxt\": \"B\"}}}", .schema, "$.States.A.Nxt"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Succeed\"}}, \"StartAt\": \"A\"}", .duplicateKey, "$.StartAt"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Task\", \"Resource\": \"r\", \"End\": true, \"Retry\": [{\"ErrorEquals\": [], \"BackoffRate\": 0.5}]}}}", .schema, "$.States.A.Retry[0].ErrorEquals"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Task\", \"Resource\": \"r\", \"End\": true, \"Retry\": [{\"ErrorEquals\": [\"X\"], \"BackoffRate\": 0.5}]}}}", .schema, "$.States.A.Retry[0].BackoffRate"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Task\", \"Resource\": \"r\", \"End\": true, \"Catch\": [{\"ErrorEquals\": [\"X\"]}]}}}", .schema, "$.States.A.Catch[0].Next"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Parallel\", \"End\": true, \"Branches\": [{\"StartAt\": \"X\", \"States\": {\"X\": {\"Type\": \"Pass\", \"Next\": \"Y\"}}}]}}}", .missingTransitionTarget, "$.States.A.Branches[0].States.X.Next"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Task\", \"Resource\": \"r\", \"End\": true, \"TimeoutSeconds\": 1e300}}}", .schema, "$.States.A.TimeoutSeconds"),
        ("{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Task\", \"Resource\": \"r\", \"End\": true, \"Retry\": [{\"ErrorEquals\": [\"X\"], \"MaxAttempts\": 123456789012345678901234567890}]}}}", .schema, "$.States.A.Retry[0].MaxAttempts"),
        ("{\"StartAt\": \"Reservation Successful!\", \"States\": {\"Reservation Successful!\": {\"Type\": \"Succeed\", \"End\": true}}}", .schema, "$.States['Reservation Successful!'].End"),
    ])
    func eachKindOfInvalidInputIsNamedWithItsPath(text: String, code: ASLProblem.Code, path: String) {
        let found = problems(text)
        #expect(has(found, code, at: path), "\(found)")
    }

    @Test func aValidDefinitionKeepsEachNodesPath() throws {
        let definition = try ASLDefinition.parse(Reference.seed, source: "seed")
        let reserve = try #require(definition.state(named: "ReserveInventory"))
        #expect(reserve.retry[0].path.description == "$.States.ReserveInventory.Retry[0]")
        #expect((reserve.retry[0].path / "ErrorEquals").description == "$.States.ReserveInventory.Retry[0].ErrorEquals")
        #expect(reserve.catchers[0].next == "RefundAndFail")
        #expect(definition.states.map(\.name) == ["ValidatePayment", "ReserveInventory", "PrepareShipment", "NotifyCustomer", "Success", "PaymentFailed", "RefundAndFail", "ReleaseInventory", "OrderFailed"])
    }

    @Test(.enabled(if: Reference.available, Comment(rawValue: SharedReference.missing)))
    func jsonataFieldsInAJSONPathMachineAndAStrayQueryLanguageEntryAreReported() throws {
        let error = try #require(throws: ASLDefinitionError.self) {
            try ASLDefinition.parse(try Reference.bytes("invalid-jsonata-querylanguage-in-states.json"), source: "invalid-jsonata")
        }
        #expect(has(error.problems, .schema, at: "$.States.QueryLanguage"))
        #expect(has(error.problems, .unreachableState, at: "$.States.QueryLanguage"))
        for state in ["FirstLambdaState", "SecondLambdaState", "ThirdLambdaState"] {
            #expect(has(error.problems, .jsonataFieldInJSONPath, at: "$.States.\(state).Arguments"))
            #expect(has(error.problems, .jsonataFieldInJSONPath, at: "$.States.\(state).Output"))
        }
        #expect(error.description.contains("JSONata"))
    }
}
