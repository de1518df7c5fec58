import Foundation
import TestSupport
import Testing

/// The seed's Step Functions definition, the one our users start from, through the real
/// executable: it imports, lint finds its gaps, `run` refuses it as it is, and once the gaps
/// are fixed in the imported YAML the saga runs 2,000 orders with the default faults and the
/// conservation check holds.
@Suite struct StepFunctionsSagaTests {
    /// The ASL definition in the first answer of shared/reference/step-functions-questions.txt.
    static func questionsFileDefinition(_ reference: URL) throws -> String {
        let questions = reference.appendingPathComponent("step-functions-questions.txt")
        let text = try String(contentsOf: questions, encoding: .utf8)
        guard let start = text.range(of: "```json "), let end = text.range(of: " ```", range: start.upperBound..<text.endIndex) else {
            throw TestSupportError("no ASL definition in \(questions.path)")
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    /// The seed the tests import is the one in the questions file, to the last field.
    @Test(.enabled(if: SharedReference.folder != nil, Comment(rawValue: SharedReference.missing)))
    func theSeedIsTheQuestionsFilesDefinition() throws {
        let fromFile = try Self.questionsFileDefinition(try #require(SharedReference.folder))
        let file = try JSONSerialization.jsonObject(with: Data(fromFile.utf8)) as? NSDictionary
        let kept = try JSONSerialization.jsonObject(with: Data(SharedReference.seedDefinition.utf8)) as? NSDictionary
        #expect(file != nil && file == kept)
    }

    @Test func theSeedImportsLintsWithItsGapsIsRefusedAndOnceFixedRunsTwoThousandOrders() throws {
        let directory = TemporaryDirectory("asl-seed")
        let seed = directory.path + "/seed.asl.json"
        try SharedReference.seedDefinition.write(toFile: seed, atomically: true, encoding: .utf8)
        let imported = directory.path + "/imported.yaml"
        let importing = try runFulfillment(["asl", "import", seed, "-o", imported])
        #expect(importing.status == 0, "\(importing.stderr)")

        let lint = try runFulfillment(["lint", "--config", imported, "--json"])
        #expect(lint.status == 1, "error-level findings exit 1: \(lint.output)")
        let report = try #require(try JSONSerialization.jsonObject(with: lint.stdout) as? [String: Any])
        let findings = (report["findings"] as? [[String: Any]]) ?? []
        func finding(_ code: String, _ subject: String) -> Bool {
            findings.contains { $0["code"] as? String == code && $0["subject"] as? String == subject && $0["severity"] as? String == "error" }
        }
        #expect(finding("compensation-gap", "shipping"), "PrepareShipment has no Catch: \(findings)")
        #expect(finding("compensation-gap", "notification"), "NotifyCustomer has no Catch")
        #expect(finding("compensation-gap", "inventory"), "ReserveInventory catches only OutOfStock")
        #expect(finding("compensation-no-retry", "compensation"), "the refund and release have no Retry")

        let refused = try runFulfillment(["run", "--orders", "10", "--data-dir", directory.path + "/refused", "--config", imported, "--http", "off"])
        #expect(refused.status == 2 && refused.stderr.contains("--allow-lint-errors"), "\(refused.stderr)")

        // The gaps fixed in the YAML as a user would: every error compensates, newest effect
        // first; the notification times out; undo actions retry with capped backoff.
        var yaml = try String(contentsOfFile: imported, encoding: .utf8)
        for (old, new) in [
            ("    compensate_on: [OutOfStock]\n    undo: [payment, inventory]\n", ""),
            ("    undo: []\n", ""),
            ("    compensate_on: []\n", ""),
            ("  notification:\n    timeout_seconds: 99999999\n", "  notification:\n    timeout_seconds: 300\n"),
            ("compensation:\n  timeout_seconds: 99999999\n  retry: []\n",
             "compensation:\n  timeout_seconds: 60\n  retry:\n    - {error_equals: [States.ALL], interval_seconds: 1, max_attempts: 5, max_delay_seconds: 30}\n"),
        ] {
            #expect(yaml.contains(old), "the imported YAML holds \(old)")
            yaml = yaml.replacingOccurrences(of: old, with: new)
        }
        let fixed = directory.path + "/fixed.yaml"
        try yaml.write(toFile: fixed, atomically: true, encoding: .utf8)
        let clean = try runFulfillment(["lint", "--config", fixed])
        #expect(clean.status == 0, "\(clean.output)")

        let run = try runFulfillment(["run", "--orders", "2000", "--faults", "default", "--json", "--data-dir", directory.path + "/data", "--config", fixed, "--http", "off"])
        #expect(run.status == 0, "\(run.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any])
        #expect((summary["completed"] as? Int ?? 0) + (summary["compensated"] as? Int ?? 0) == 2000, "\(summary)")
        #expect(summary["in_flight"] as? Int == 0)
        #expect((summary["check"] as? [String: Any])?["ok"] as? Bool == true, "\(summary["check"] ?? "")")

        // And back: the fixed configuration exports as a definition that imports to the same.
        let exported = try runFulfillment(["asl", "export", "--config", fixed])
        #expect(exported.status == 0, "\(exported.stderr)")
        let again = directory.path + "/again.asl.json"
        try exported.stdout.write(to: URL(fileURLWithPath: again))
        #expect(try runFulfillment(["asl", "import", again]).status == 0)
    }

    @Test func invalidDefinitionsAreRefusedWithEveryProblemAndItsPath() throws {
        let directory = TemporaryDirectory("asl-invalid")
        let broken = directory.path + "/broken.json"
        try #"{"StartAt":"Missing","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Next":"Nowhere"}}}"#
            .write(toFile: broken, atomically: true, encoding: .utf8)
        let result = try runFulfillment(["asl", "import", broken])
        #expect(result.status == 2)
        #expect(result.stderr.contains("$.StartAt") && result.stderr.contains("$.States.A.Next"), "\(result.stderr)")
        let notJSON = directory.path + "/not.json"
        try "{ nope".write(toFile: notJSON, atomically: true, encoding: .utf8)
        #expect(try runFulfillment(["asl", "import", notJSON]).status == 2)
        #expect(try runFulfillment(["lint", "--asl", notJSON]).status == 2)
        #expect(try runFulfillment(["asl", "import", directory.path + "/absent.json"]).status == 2)
    }
}
