import ArgumentParser
import Foundation
import SagaDomain
import StepFunctions

struct ASLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asl",
        abstract: "Step Functions definitions (Amazon States Language) in and out.",
        discussion: """
            `asl import` reads a definition (the JSONPath dialect) and writes our saga configuration: Task states become steps, Retry becomes retry policies field for field, Catch chains become what a failure compensates (compensate_on, undo), a Choice on tier or amount becomes VIP routing. What has no counterpart is refused, naming the state and its JSON path. `asl export` writes the configuration back as a definition. The mapping, field by field: docs/asl.md.
            """,
        subcommands: [Import.self, Export.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Read a Step Functions definition and write the saga configuration it describes.",
            discussion: """
                Invalid definitions are refused with every problem listed with its JSON path (exit 2): not JSON, no StartAt, a Next to a missing state, unreachable states, States.ALL not alone or not last, duplicate state names. JSONata definitions are refused until supported. Lint the result with `fulfillment lint --config FILE`.

                Example: fulfillment asl import order.asl.json --map ValidatePayment=payment,RefundAndFail=undo:payment -o config/imported.yaml
                """)
        @Argument(help: "The definition (JSON).") var definition: String
        @Option(name: .shortAndLong, help: "Write the configuration here (default: stdout).") var output: String?
        @Option(help: ArgumentHelp(
            "Which state is which step: State=role,... (payment, inventory, shipping, notification, undo:payment, undo:inventory, undo:shipping, manual-review, skip).",
            discussion: "Repeatable. A comma inside a state name is written \\,. States not named are mapped by their names and resources."))
        var map: [String] = []

        func run() async throws {
            try await reportingFailures {
                let mapping = try StepFunctionsInput.mapping(map)
                let bytes = try StepFunctionsInput.read(definition)
                let result: ASLImportResult
                do {
                    result = try ASLImport(mapping: mapping).run(bytes: bytes, source: definition)
                } catch let error as ASLDefinitionError {
                    throw CommandFailure(message: error.description)
                } catch let error as ASLImportRefusal {
                    throw CommandFailure(message: error.description)
                }
                if let output {
                    do { try result.yaml.write(toFile: output, atomically: true, encoding: .utf8) } catch {
                        throw CommandFailure(message: "cannot write \(output): \(error.localizedDescription)")
                    }
                    writeStderr("wrote \(output): \(result.mapped.count) states mapped\(result.unmapped.isEmpty ? "" : ", \(result.unmapped.count) not mapped")")
                } else {
                    print(result.yaml, terminator: result.yaml.hasSuffix("\n") ? "" : "\n")
                }
                for state in result.unmapped { writeStderr("not mapped: \(state)") }
                for note in result.notes { writeStderr("note: \(note)") }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write the loaded configuration as a Step Functions definition (Task, Retry, Catch, Choice for VIP).")
        @OptionGroup var settings: ConfigOptions
        @Option(name: .shortAndLong, help: "Write the definition here (default: stdout).") var output: String?

        func run() async throws {
            try await reportingFailures {
                let exported = ASLExport(configuration: try settings.loadConfiguration()).run()
                if let output {
                    do { try exported.text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
                        throw CommandFailure(message: "cannot write \(output): \(error.localizedDescription)")
                    }
                } else {
                    print(exported.text, terminator: exported.text.hasSuffix("\n") ? "" : "\n")
                }
                for note in exported.notes { writeStderr("note: \(note)") }
            }
        }
    }
}

struct LintCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lint",
        abstract: "Find where a saga leaks money or stock: compensation gaps, undo order, retries and timeouts.",
        discussion: """
            Lints the loaded configuration (--config, or config/fulfillment.yaml) or a Step Functions definition (--asl). Each finding has a severity, the step or state (and its JSON path), a code and a one-line why; the codes are listed in docs/asl.md. Exit 1 when there is an error-level finding. `run`, `worker` and `dispatcher` refuse a configuration with error-level findings unless --allow-lint-errors.
            """)
    @OptionGroup var settings: ConfigOptions
    @Option(help: "Lint this Step Functions definition instead of the configuration.") var asl: String?
    @Option(help: "With --asl: which state is which step (as `asl import --map`).") var map: [String] = []
    @Option(help: "The whole saga's time budget in seconds: worst cases above it are errors.") var sagaBudgetSeconds: Double?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if asl != nil && settings.config != nil { throw ValidationError("lint either --config or --asl, not both") }
        if asl == nil && !map.isEmpty { throw ValidationError("--map goes with --asl") }
        if let sagaBudgetSeconds, sagaBudgetSeconds <= 0 { throw ValidationError("--saga-budget-seconds must be positive") }
    }

    struct Output: Encodable {
        var schema_version = 1
        var subject: String
        var errors: Int
        var findings: [LintFinding]
    }

    func run() async throws {
        var failed = false
        try await reportingFailures {
            let lint = SagaLint(sagaBudgetSeconds: sagaBudgetSeconds)
            let findings: [LintFinding]
            let subject: String
            if let asl {
                let definition: ASLDefinition
                do {
                    definition = try ASLDefinition.parse(try StepFunctionsInput.read(asl), source: asl)
                } catch let error as ASLDefinitionError {
                    throw CommandFailure(message: error.description)
                }
                findings = lint.findings(for: definition, mapping: try StepFunctionsInput.mapping(map))
                subject = asl
            } else {
                findings = lint.findings(for: try settings.loadConfiguration())
                subject = settings.config ?? "the configuration"
            }
            let sorted = findings.sorted { ($1.severity, $0.subject) < ($0.severity, $1.subject) }
            failed = SagaLint.hasErrors(findings)
            if json {
                return try printJSON(Output(subject: subject, errors: findings.filter { $0.severity == .error }.count, findings: sorted))
            }
            for finding in sorted { print(finding.description) }
            let counts = LintFinding.Severity.allCases.map { severity in "\(findings.filter { $0.severity == severity }.count) \(severity.rawValue)" }
            print("\(subject): " + counts.joined(separator: ", "))
        }
        if failed { throw ExitCode(1) }
    }
}

/// What the Step Functions commands read.
enum StepFunctionsInput {
    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CommandFailure(message: "cannot read \(path): it does not exist or is not readable")
        }
        return Array(data)
    }

    static func mapping(_ values: [String]) throws -> StateMapping {
        do { return try StateMapping(parsing: values) } catch { throw CommandFailure(message: error.description) }
    }
}

/// `--allow-lint-errors`, and the check it switches off, for the commands that run the saga.
struct LintGate: ParsableArguments {
    @Flag(help: "Run even when `fulfillment lint` finds error-level gaps in the configuration (an order can then leak money or stock).")
    var allowLintErrors = false

    /// Refuses a configuration with error-level findings, listing them.
    func check(_ configuration: SagaConfiguration, source: String?) throws {
        let errors = SagaLint().findings(for: configuration).filter { $0.severity == .error }
        guard !errors.isEmpty, !allowLintErrors else { return }
        throw CommandFailure(message: "the configuration \(source ?? "") has \(errors.count) error-level lint finding(s):\n"
            + errors.map { "  \($0)" }.joined(separator: "\n")
            + "\nFix them (fulfillment lint --config FILE explains each), or pass --allow-lint-errors to run anyway.")
    }
}
