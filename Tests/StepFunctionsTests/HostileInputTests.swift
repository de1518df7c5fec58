import Foundation
import Testing
import SagaDomain
@testable import StepFunctions

/// Thousands of deterministic mutations of the reference definitions and the seed
/// (truncated, bytes flipped, keys deleted, values of the wrong type, nesting 10,000 deep,
/// numbers too large): parse, import, export, YAML and lint answer every one with a result
/// or an error that says where, and never crash.
@Suite struct HostileInputTests {
    /// A small deterministic generator (64-bit LCG), so a failure reproduces.
    struct Draws {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(max(1, bound)))
        }
    }

    struct Tally {
        var invalid = 0
        var refused = 0
        var imported = 0
        var total: Int { invalid + refused + imported }
    }

    /// Every stage on one input; returns which way it went.
    static func exercise(_ bytes: [UInt8], tally: inout Tally) {
        let definition: ASLDefinition
        do {
            definition = try ASLDefinition.parse(bytes, source: "mutant")
        } catch {
            #expect(!error.problems.isEmpty)
            #expect(error.problems.allSatisfy { $0.path.description.hasPrefix("$") })
            tally.invalid += 1
            return
        }
        let findings = SagaLint().findings(for: definition)
        #expect(findings.allSatisfy { !$0.message.isEmpty })
        do {
            let result = try ASLImport().run(definition, source: "mutant")
            #expect((try? SagaConfiguration.parse(result.yaml, source: "mutant")) == result.configuration)
            _ = PolicyExplanation(configuration: result.configuration).text()
            _ = SagaLint().findings(for: result.configuration)
            let exported = ASLExport(configuration: result.configuration).run().text
            #expect((try? ASLDefinition.parse(exported, source: "export")) != nil, "an export always parses")
            tally.imported += 1
        } catch {
            #expect(!error.reasons.isEmpty)
            tally.refused += 1
        }
    }

    static func sources() throws -> [(String, [UInt8])] {
        // The seed always; the AWS definitions where they are on this machine.
        [("seed", Array(Reference.seed.utf8))] + (Reference.available ? try Reference.names.map { ($0, try Reference.bytes($0)) } : [])
    }

    /// Every object member's path in a document, as index paths.
    static func memberPaths(_ value: JSONValue, prefix: [Int] = []) -> [[Int]] {
        switch value {
        case .object(let members): return members.enumerated().flatMap { i, m in [prefix + [i]] + memberPaths(m.value, prefix: prefix + [i]) }
        case .array(let items): return items.enumerated().flatMap { i, item in memberPaths(item, prefix: prefix + [i]) }
        default: return []
        }
    }

    /// `value` with the member or element at `path` removed (`replacement == nil`) or replaced.
    static func editing(_ value: JSONValue, at path: [Int], with replacement: JSONValue?) -> JSONValue {
        guard let first = path.first else { return replacement ?? value }
        switch value {
        case .object(var members):
            guard first < members.count else { return value }
            if path.count == 1 {
                if let replacement { members[first].value = replacement } else { members.remove(at: first) }
            } else {
                members[first].value = editing(members[first].value, at: Array(path.dropFirst()), with: replacement)
            }
            return .object(members)
        case .array(var items):
            guard first < items.count else { return value }
            items[first] = editing(items[first], at: Array(path.dropFirst()), with: replacement)
            return .array(items)
        default:
            return value
        }
    }

    @Test func mutationsOfEveryReferenceDefinitionNeverCrash() throws {
        var tally = Tally()
        var draws = Draws(state: 16)
        let wrongTypes: [JSONValue] = [.string("x"), .number(1e308), .number(-1), .number(1.5), .number(99_999_999_999), .null, .bool(true), .array([]), .object([]), .array([.number(1)])]
        for (_, bytes) in try Self.sources() {
            for i in 0..<40 { Self.exercise(Array(bytes.prefix(bytes.count * i / 40)), tally: &tally) }
            for _ in 0..<120 {
                var mutant = bytes
                for _ in 0..<(1 + draws.next(3)) { mutant[draws.next(mutant.count)] ^= UInt8(1 + draws.next(255)) }
                Self.exercise(mutant, tally: &tally)
            }
            guard let document = try? JSONValue.parse(bytes, maxDepth: 200) else { continue }
            let paths = Self.memberPaths(document)
            for _ in 0..<60 {
                let path = paths[draws.next(paths.count)]
                Self.exercise(Array(PrettyJSON.text(Self.editing(document, at: path, with: nil)).utf8), tally: &tally)
                let replacement = wrongTypes[draws.next(wrongTypes.count)]
                Self.exercise(Array(PrettyJSON.text(Self.editing(document, at: path, with: replacement)).utf8), tally: &tally)
            }
            // Every number as large as a Double goes, and one past it.
            let huge = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: #"(?<=[:\[ ,])[0-9]+(\.[0-9]+)?(?=[ ,}\]\n])"#, with: "1.7976931348623157e308", options: .regularExpression)
            Self.exercise(Array(huge.utf8), tally: &tally)
            let tooHuge = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: #"(?<=[:\[ ,])[0-9]+(?=[ ,}\]\n])"#, with: "1" + String(repeating: "0", count: 400), options: .regularExpression)
            Self.exercise(Array(tooHuge.utf8), tally: &tally)
            // Nesting 10,000 deep, as the whole document and inside a state.
            let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            Self.exercise(Array(deep.utf8), tally: &tally)
            let deepObject = String(repeating: "{\"a\":", count: 10_000) + "1" + String(repeating: "}", count: 10_000)
            if let first = paths.first {
                let nested = PrettyJSON.text(Self.editing(document, at: first, with: .string("PLACEHOLDER")))
                Self.exercise(Array(nested.replacingOccurrences(of: "\"PLACEHOLDER\"", with: deepObject).utf8), tally: &tally)
            }
        }
        #expect(tally.total >= 3_000, "\(tally)")
        #expect(tally.invalid > 1_000, "most mutants are invalid: \(tally)")
        #expect(tally.imported > 50 && tally.refused > 50, "some mutants stay valid and go through import: \(tally)")
    }

    @Test func aVIPThresholdTooLargeToPrintIsRefusedNotTrapped() throws {
        let definition = try ASLDefinition.parse(#"{"StartAt": "VIP?", "States": {"VIP?": {"Type": "Choice", "Choices": [{"Variable": "$.amount", "NumericGreaterThan": 1e300, "Next": "Charge"}], "Default": "Charge"}, "Charge": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 30, "End": true}}}"#)
        let refusal = try #require(throws: ASLImportRefusal.self) { try ASLImport().run(definition) }
        #expect(refusal.reasons.map(\.state) == ["VIP?"])
        #expect(throws: ConfigurationError.self) { try SagaConfiguration.parse("vip:\n  amount_threshold: 1e300\n") }
        _ = SagaLint().findings(for: definition)
    }

    @Test func aTenThousandLevelDocumentIsRefusedAsTooDeep() throws {
        let error = try #require(throws: ASLDefinitionError.self) {
            try ASLDefinition.parse(String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000))
        }
        #expect(error.problems.first?.message.contains("nesting deeper than \(ASLDefinition.maxNestingDepth)") == true)
    }
}
