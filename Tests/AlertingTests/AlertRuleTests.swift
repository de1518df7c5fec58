import Alerting
import Foundation
import FulfillmentMetrics
import SagaDomain
import Testing

/// The alert rules: the rule file Prometheus reads is valid, each rule fires and stays quiet
/// when promtool evaluates it over a scenario, and the in-process evaluator says the same
/// over the same series.
@Suite struct AlertRuleTests {
    let configuration = SagaConfiguration()

    @Test func theRuleFileHasEveryAlertOfTheSeedAndPromtoolAcceptsIt() throws {
        let rules = AlertRules.make(configuration)
        #expect(rules.map(\.name) == [
            "SagaSuccessRateLow", "InventoryReserveFailuresHigh", "StepRetryRateHigh", "StepTimeouts", "DeadLettersGrowing", "OrdersInManualReview",
            "VIPLatencyHigh", "StandardLatencyHigh", "StuckOrdersHigh", "ConsumerLagHigh",
        ])
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/rules.yml"
        try PrometheusRuleFile.render(rules, evaluationIntervalSeconds: 15).write(toFile: file, atomically: true, encoding: .utf8)
        let (status, output) = try Self.promtool(["check", "rules", file])
        #expect(status == 0, "\(output)")
        #expect(output.contains("SUCCESS: 10 rules found"), "\(output)")
    }

    @Test func aThresholdSetOffLeavesItsAlertOut() throws {
        let yaml = "alerts:\n  success_rate_below: off\n  dead_letters_pending_growing: false\n  vip_p99_seconds_above: 30\n"
        let configured = try SagaConfiguration.parse(yaml)
        let names = AlertRules.make(configured).map(\.name)
        #expect(!names.contains("SagaSuccessRateLow") && !names.contains("DeadLettersGrowing"))
        #expect(AlertRules.make(configured).first { $0.name == "VIPLatencyHigh" }?.expression.hasSuffix("> 30") == true)
        #expect(throws: ConfigurationError.self) { try SagaConfiguration.parse("alerts:\n  success_rate_below: 2\n") }
        #expect(throws: ConfigurationError.self) { try SagaConfiguration.parse("alerts:\n  nonsense: 1\n") }
    }

    @Test(arguments: AlertScenario.all(SagaConfiguration()))
    func promtoolFiresEachRuleOnItsScenarioAndNotBefore(_ scenario: AlertScenario) throws {
        let rules = AlertRules.make(configuration)
        let rule = try #require(rules.first { $0.name == scenario.rule })
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try PrometheusRuleFile.render(rules, evaluationIntervalSeconds: 60, annotations: false)
            .write(toFile: directory + "/rules.yml", atomically: true, encoding: .utf8)
        var test = """
            rule_files: [rules.yml]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:

            """
        for series in scenario.series {
            let labels = series.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ",")
            test += "      - series: '\(series.name){\(labels)}'\n        values: '\(series.values.map { String(format: "%.0f", $0) }.joined(separator: " "))'\n"
        }
        let expected = (scenario.labels.merging(["severity": rule.severity.rawValue]) { $1 }).sorted { $0.key < $1.key }
            .map { "\($0.key): \"\($0.value)\"" }.joined(separator: ", ")
        test += """
                alert_rule_test:
                  - eval_time: \(scenario.quietAt)m
                    alertname: \(scenario.rule)
                    exp_alerts: []
                  - eval_time: \(scenario.firesAt)m
                    alertname: \(scenario.rule)
                    exp_alerts:
                      - exp_labels: {\(expected)}

            """
        try test.write(toFile: directory + "/test.yml", atomically: true, encoding: .utf8)
        let (status, output) = try Self.promtool(["test", "rules", directory + "/test.yml"])
        #expect(status == 0, "promtool:\n\(output)\n\(test)")
    }

    @Test(arguments: AlertScenario.all(SagaConfiguration()))
    func theInProcessEvaluatorAgreesWithPromtool(_ scenario: AlertScenario) throws {
        var evaluator = AlertEvaluator(rules: AlertRules.make(configuration))
        var firingAt: [Int: [ActiveAlert]] = [:]
        for minute in 0..<AlertScenario.minutes {
            _ = evaluator.evaluate(scenario.snapshot(at: minute))
            firingAt[minute] = evaluator.firing.filter { $0.name == scenario.rule }
        }
        #expect(firingAt[scenario.quietAt]?.isEmpty == true, "fired too early: \(firingAt[scenario.quietAt] ?? [])")
        let fired = try #require(firingAt[scenario.firesAt]?.first, "did not fire by minute \(scenario.firesAt)")
        #expect(fired.labels == scenario.labels)
        #expect(!fired.summary.contains("{{"), "the summary is filled in: \(fired.summary)")
    }

    @Test func anAlertWaitsForItsForDurationThenFiresOnceAndResolvesOnce() {
        var policy = AlertPolicy()
        policy.forSeconds = 120
        var configuration = SagaConfiguration()
        configuration.alerts = policy
        var evaluator = AlertEvaluator(rules: AlertRules.make(configuration).filter { $0.name == "ConsumerLagHigh" })
        func lag(_ value: Double, at: Double) -> MetricsSnapshot {
            MetricsSnapshot(values: [.init(MetricCatalogue.consumerLag.name, ["group": "g", "topic": "t"]): value], at: at)
        }
        #expect(evaluator.evaluate(lag(500_000, at: 0)).isEmpty, "pending, not firing")
        #expect(evaluator.alerts.count == 1 && evaluator.firing.isEmpty)
        #expect(evaluator.evaluate(lag(500_000, at: 60)).isEmpty)
        let fired = evaluator.evaluate(lag(500_000, at: 120))
        guard case .fired(let alert) = fired.first else { Issue.record("expected it to fire at 120 s: \(fired)"); return }
        #expect(alert.labels == ["group": "g"] && alert.firingSince == 120 && alert.activeSince == 0)
        #expect(evaluator.evaluate(lag(500_000, at: 180)).isEmpty, "fires once")
        let resolved = evaluator.evaluate(lag(10, at: 240))
        guard case .resolved(let gone, let at) = resolved.first else { Issue.record("expected it to resolve: \(resolved)"); return }
        #expect(gone.name == "ConsumerLagHigh" && at == 240)
        #expect(evaluator.alerts.isEmpty)
        // A condition that stops before its `for` never fires, and never resolves either.
        _ = evaluator.evaluate(lag(500_000, at: 300))
        #expect(evaluator.evaluate(lag(10, at: 360)).isEmpty)
    }

    @Test func theWebhookSpeaksAlertmanagersFormat() throws {
        let alert = ActiveAlert(
            name: "OrdersInManualReview", severity: "page", labels: [:], summary: "1 orders parked", description: "d", value: 1, activeSince: 1_000,
            firingSince: 1_000)
        let webhook = AlertmanagerWebhook(url: URL(string: "http://127.0.0.1:9/hook")!, externalURL: "http://127.0.0.1:8080", logger: .init(label: "t"))
        let body = webhook.payload(.fired(alert))
        #expect(body["version"] as? String == "4")
        #expect(body["status"] as? String == "firing")
        let alerts = try #require(body["alerts"] as? [[String: Any]])
        #expect((alerts[0]["labels"] as? [String: String])?["alertname"] == "OrdersInManualReview")
        #expect((alerts[0]["labels"] as? [String: String])?["severity"] == "page")
        #expect(alerts[0]["startsAt"] as? String == "1970-01-01T00:16:40.000Z")
        #expect(alerts[0]["endsAt"] as? String == "0001-01-01T00:00:00Z")
        #expect((alerts[0]["fingerprint"] as? String)?.count == 16)
        let resolved = webhook.payload(.resolved(alert, at: 2_000))
        #expect(resolved["status"] as? String == "resolved")
        #expect(((resolved["alerts"] as? [[String: Any]])?[0]["endsAt"] as? String) == "1970-01-01T00:33:20.000Z")
        #expect(JSONSerialization.isValidJSONObject(body))
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "alert-rules-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs Debian's promtool (package `prometheus`; `make test` installs it).
    static func promtool(_ arguments: [String]) throws -> (Int32, String) {
        let path = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else { throw PromtoolMissing() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    struct PromtoolMissing: Error, CustomStringConvertible {
        var description: String { "promtool is not installed: apt-get install prometheus (make test does)" }
    }
}
