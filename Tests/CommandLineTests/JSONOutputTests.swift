import Foundation
import Testing
import TestSupport

/// The `--json` output of run, stats, check, dlq list and order follows its schema in
/// docs/schemas (every key present, no key the schema does not name), checked by a real
/// JSON Schema validator on the output of a real run with faults.
@Suite(.serialized) struct JSONOutputTests {
    static func validate(_ output: FulfillmentResult, against schema: String) throws {
        #expect(output.exitedCleanly || output.status == 1, "\(output.stderr)")
        let validator = Process()
        validator.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        validator.arguments = ["python3", SagaRepository.root.appendingPathComponent("scripts/check-json-schema.py").path,
                               SagaRepository.root.appendingPathComponent("docs/schemas/\(schema).schema.json").path]
        let input = Pipe(), report = Pipe()
        validator.standardInput = input
        validator.standardOutput = report
        validator.standardError = report
        try validator.run()
        input.fileHandleForWriting.write(output.stdout)
        try input.fileHandleForWriting.close()
        let said = String(decoding: report.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        validator.waitUntilExit()
        #expect(validator.terminationStatus == 0, "\(schema): \(said)\n\(output.output.prefix(3000))")
    }

    @Test func everyJSONOutputMatchesItsSchema() throws {
        let temporary = TemporaryDirectory("json")
        let directory = temporary.path
        let fast = SagaRepository.root.appendingPathComponent("config/profiles/fast.yaml").path
        let run = try runFulfillment(["run", "--http", "off", "--orders", "300", "--faults", "default", "--json", "--config", fast, "--data-dir", directory])
        try Self.validate(run, against: "run")
        let base = ["--data-dir", directory]
        try Self.validate(try runFulfillment(["stats", "--json", "--config", fast] + base), against: "stats")
        try Self.validate(try runFulfillment(["check", "--json"] + base), against: "check")
        try Self.validate(try runFulfillment(["dlq", "list", "--json", "--config", fast] + base), against: "dlq-list")
        // One order of each kind: completed, compensated (a declined card), rejected only.
        let lines = """
            {"order_id":"json-bad","customer_id":"c"}
            {"order_id":"json-declined","customer_id":"c-7","currency":"USD","items":[{"sku":"SKU-1","quantity":1,"unit_price":10}],"payment":{"method":"card","token":"tok_decline"},"shipping_address":{"name":"A","line1":"1 Main St","city":"S","postal_code":"1","country":"US"},"email":"b@example.com"}
            {"order_id":"json-fine","customer_id":"c-7","currency":"USD","items":[{"sku":"SKU-1","quantity":1,"unit_price":10}],"payment":{"method":"card","token":"tok_visa"},"shipping_address":{"name":"A","line1":"1 Main St","city":"S","postal_code":"1","country":"US"},"email":"b@example.com"}

            """
        let queued = try runFulfillment(["produce", "--config", fast] + base, input: Data(lines.utf8))
        #expect(queued.exitedCleanly, "\(queued.stderr)")
        let drained = try runFulfillment(["run", "--http", "off", "--drain", "--json", "--config", fast] + base)
        try Self.validate(drained, against: "run")
        // Its rate counts the two orders it finished, not the 300 an earlier run finished.
        let summary = try #require(try JSONSerialization.jsonObject(with: drained.stdout) as? [String: Any])
        let (rate, duration) = (summary["orders_per_s"] as? Double ?? -1, summary["duration_s"] as? Double ?? -1)
        #expect(duration > 0 && abs(rate * duration - 2) < 0.01, "\(rate) orders/s over \(duration) s")
        // Nothing left to drain: nothing finished in this run.
        let idle = try runFulfillment(["run", "--http", "off", "--drain", "--json", "--config", fast] + base)
        try Self.validate(idle, against: "run")
        let idleSummary = try #require(try JSONSerialization.jsonObject(with: idle.stdout) as? [String: Any])
        #expect(idleSummary["orders_per_s"] as? Double == 0 && idleSummary["duration_s"] as? Double == 0, "\(idle.output)")
        for (id, state) in [("json-bad", nil), ("json-declined", "compensated"), ("json-fine", "completed")] {
            let order = try runFulfillment(["order", id, "--json"] + base)
            try Self.validate(order, against: "order")
            let parsed = try #require(try JSONSerialization.jsonObject(with: order.stdout) as? [String: Any])
            #expect((parsed["order"] as? [String: Any])?["state"] as? String == state, "\(id): \(order.output)")
        }
    }
}
