import Alerting
import ArgumentParser
import Foundation

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "The configured alert thresholds as a Prometheus rule file, or as a list.",
        discussion: """
            The thresholds live in the `alerts:` section of the configuration (the seed's values by default). `run` evaluates the same thresholds in process and prints a line when an alert fires or resolves; Prometheus evaluates this rule file over the /metrics of every process. Check it with `promtool check rules FILE`.
            """,
        subcommands: [Rules.self, List.self])

    struct Rules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the alert rules as a Prometheus rule file (YAML).")
        @OptionGroup var settings: ConfigOptions
        @Option(name: .shortAndLong, help: "Write to this file instead of stdout.") var output: String?

        func run() async throws {
            try await reportingFailures {
                let configuration = try settings.loadConfiguration()
                let text = PrometheusRuleFile.render(AlertRules.make(configuration), evaluationIntervalSeconds: configuration.alerts.evaluationIntervalSeconds)
                if let output {
                    do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
                        throw CommandFailure(message: "cannot write \(output): \(error.localizedDescription)")
                    }
                } else {
                    print(text, terminator: "")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each alert with its severity, for, and condition in words.")
        @OptionGroup var settings: ConfigOptions
        @Flag(help: "Print JSON.") var json = false

        struct Entry: Encodable {
            var name: String
            var severity: String
            var for_seconds: Double
            var summary: String
            var expression: String
        }

        func run() async throws {
            try await reportingFailures {
                let rules = AlertRules.make(try settings.loadConfiguration())
                if json {
                    return try printJSON(rules.map {
                        Entry(name: $0.name, severity: $0.severity.rawValue, for_seconds: $0.forSeconds, summary: $0.summary, expression: $0.expression)
                    })
                }
                for rule in rules {
                    print("\(rule.name) [\(rule.severity.rawValue)]\(rule.forSeconds > 0 ? " for \(Int(rule.forSeconds)) s" : "")")
                    print("  \(rule.description)")
                    print("  \(rule.expression)")
                }
            }
        }
    }
}
