import ArgumentParser
import Dispatcher
import Foundation
import Messaging
import SagaAssembly
import SagaDomain

struct DlqCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect and redrive dead letters (step DLTs, the compensation DLT, orders.manual-review).",
        subcommands: [List.self, Show.self, Redrive.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Depth, pending (not yet redriven) and error classes of every dead-letter topic. Read-only.")
        @OptionGroup var saga: SagaOptions
        @Flag(help: "Print JSON.") var json = false

        struct ListOutput: Codable {
            var schema_version = 1
            var topics: [DeadLetters.TopicSummary]
        }

        func run() async throws {
            try await reportingFailures {
                let (broker, store) = try await saga.openReadOnly()
                defer { broker.shutdown() }
                let summaries = try await DeadLetters(broker: broker, store: store, topics: try saga.loadConfiguration().topics).summaries()
                if json { return try printJSON(ListOutput(topics: summaries)) }
                for s in summaries {
                    let classes = s.errorClasses.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    print("\(s.topic.padding(toLength: 36, withPad: " ", startingAt: 0)) depth \(s.depth), pending \(s.pending)\(classes.isEmpty ? "" : " (\(classes))")")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The dead letters of one topic with their headers and payload. Read-only.")
        @OptionGroup var saga: SagaOptions
        @Argument(help: "A dead-letter topic, e.g. payment.requested.dlt or orders.manual-review.") var topic: String
        @Option(help: "Only this order's letters.") var order: String?
        @Option(help: "At most this many letters.") var limit = 50
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (broker, store) = try await saga.openReadOnly()
                defer { broker.shutdown() }
                let letters = try await DeadLetters(broker: broker, store: store, topics: try saga.loadConfiguration().topics).letters(topic: topic, orderID: order, limit: limit)
                if json { return try printJSON(letters) }
                if letters.isEmpty { print("no dead letters on \(topic)\(order.map { " for order \($0)" } ?? "")") }
                for l in letters {
                    print("\(l.topic)/\(l.partition)/\(l.offset)  order \(l.orderID)\(l.redriven ? "  (redriven)" : "")")
                    print("  error     \(l.headers[SagaHeader.errorClass] ?? "?"): \(l.headers[SagaHeader.errorMessage] ?? "")")
                    print("  from      \(l.headers[SagaHeader.originalTopic] ?? "?") partition \(l.headers[SagaHeader.originalPartition] ?? "?") offset \(l.headers[SagaHeader.originalOffset] ?? "?"), attempt \(l.headers[SagaHeader.attempt] ?? "?")")
                    if let reason = l.headers[SagaHeader.reason] { print("  reason    \(reason)") }
                    print("  payload   \(l.value.prefix(300))")
                }
            }
        }
    }

    struct Redrive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead letters back on the topic they failed on (same idempotency key, attempt 1).",
            discussion: "Select by --order, or take every pending letter with --all. Needs the data directory's owner stopped; `run --drain` then processes them.\n\nPoison records (<topic>.poison: records that crashed a process twice) are redriven only from a topic named with --topic: put one back only once what crashed on it is fixed, or it crashes the consumer twice more and is set aside again.")
        @OptionGroup var saga: SagaOptions
        @Option(help: "Only these dead-letter topics (default: all of them but the .poison ones).") var topic: [String] = []
        @Option(help: "Only this order's letters.") var order: String?
        @Flag(help: "Redrive every pending letter.") var all = false
        @Flag(help: "Show what would be redriven without doing it.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if order == nil && !all { throw ValidationError("say which letters: --order ID, or --all") }
        }

        func run() async throws {
            try await reportingFailures {
                let (broker, maybeStore) = dryRun ? try await saga.openReadOnly() : try await saga.openForWriting()
                defer { broker.shutdown() }
                guard let store = maybeStore else { throw CommandFailure(message: "no saga data in \(try saga.storeLocation): nothing was dead-lettered there") }
                let letters = DeadLetters(broker: broker, store: store, topics: try saga.loadConfiguration().topics)
                let selected = topic.isEmpty ? try await letters.defaultRedriveTopics() : topic
                let result = try await letters.redrive(topics: selected, orderID: order, dryRun: dryRun)
                if json { return try printJSON(result) }
                for l in result.redriven {
                    print("\(dryRun ? "would redrive" : "redriven") \(l.topic)/\(l.partition)/\(l.offset) order \(l.orderID) -> \(l.headers[SagaHeader.originalTopic] ?? "compensation.requested")")
                }
                for s in result.skipped { print("skipped \(s)") }
                print("\(result.redriven.count) letter(s) \(dryRun ? "would be " : "")redriven, \(result.skipped.count) skipped")
            }
        }
    }
}

struct OrderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "order",
        abstract: "Status and full event history of one order, like an execution history. Read-only.")
    @OptionGroup var saga: StoreReadOptions
    @Argument(help: "The order_id.") var id: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingFailures {
            let store = try saga.openDispatcherStore()
            guard let report = try OrderReport.load(id, from: store) else {
                throw CommandFailure(message: "no order \(id) in \(try saga.storeLocation); check the id, or whether it is still queued on `orders`")
            }
            if json { return try printJSON(report) }
            let (order, history, rejections) = (report.order, report.history, report.rejections)
            if let order {
                print("order \(order.orderID): \(order.state)  (\(Money.format(cents: order.amountCents)), \(order.units) units, \(order.tier), lane \(order.priority))")
                if let error = order.errorClass { print("last error: \(error): \(order.errorMessage ?? "")") }
                if let finished = order.finishedAt { print("took \(finished - order.createdAt) ms") }
            }
            for r in rejections { print("rejected: \(r)") }
            guard let first = history.first else { return }
            print("")
            var previous = first.at
            for h in history {
                let step = h.step.map { " \($0)" } ?? ""
                let attempt = h.attempt.map { " attempt \($0)" } ?? ""
                let error = h.errorClass.map { "  \($0): \(h.errorMessage ?? "")" } ?? ""
                print(String(format: "+%7.3fs (%+6d ms)  ", Double(h.at - first.at) / 1000, Int(h.at - previous)) + "\(h.event)\(step)\(attempt)  [\(h.topic)/\(h.partition)/\(h.offset)]\(error)")
                previous = h.at
            }
        }
    }
}

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Throughput, success rate, retries and compensations per step, DLT depth, lag, latency by tier. Read-only.")
    @OptionGroup var saga: SagaOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingFailures {
            let (broker, store) = try await saga.openReadOnly()
            defer { broker.shutdown() }
            let stats = try await SagaStatistics.collect(store: store, broker: broker, configuration: try saga.loadConfiguration())
            if json { return try printJSON(stats) }
            print("orders        \(stats.orders) accepted, \(stats.rejected) rejected")
            print("states        " + stats.states.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print(String(format: "throughput    %.1f completed orders/s", stats.completedPerSecond))
            print(String(format: "success rate  %.2f%%", stats.successRate * 100))
            for (step, f) in stats.steps.sorted(by: { $0.key < $1.key }) {
                print("\(step.padding(toLength: 13, withPad: " ", startingAt: 0)) retries \(f.retries), dead letters \(f.deadLetters), timeouts \(f.timeouts)")
            }
            print("compensations \(stats.compensations), manual-review alerts \(stats.manualReviewAlerts)")
            print("DLT depth     " + stats.deadLetterDepth.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("lag           " + stats.lag.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            for (tier, l) in stats.latencyMilliseconds.sorted(by: { $0.key < $1.key }) where l.count > 0 {
                print(String(format: "latency %@ p50 %.0f ms, p99 %.0f ms (%d orders)", tier.padding(toLength: 9, withPad: " ", startingAt: 0), l.p50, l.p99, l.count))
            }
            if !stats.rejectionReasons.isEmpty {
                print("rejections    " + stats.rejectionReasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            }
            if let at = stats.alertsEvaluatedAt {
                let age = Date().timeIntervalSince1970 - at
                let stale = age > max(60, try saga.loadConfiguration().alerts.evaluationIntervalSeconds * 3) ? " (as of \(Int(age)) s ago: is the saga running?)" : ""
                if stats.alerts.isEmpty {
                    print("alerts        none firing\(stale)")
                } else {
                    print("alerts        \(stats.alerts.count) firing\(stale)")
                    for alert in stats.alerts { print("  [\(alert.severity)] \(alert.name): \(alert.summary)") }
                }
            }
        }
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the conservation invariants; exit 1 on any violation. Read-only.",
        discussion: """
            charged − refunded = sum of completed orders' amounts; initial − final stock = units of completed orders; no order charged twice; no shipment for a compensated order; one notice per finished order. Orders still in flight are counted and left out of per-order checks.
            """)
    @OptionGroup var saga: StoreReadOptions
    @Flag(help: "Print one JSON object with `ok` and `violations`.") var json = false

    func run() async throws {
        var failed = false
        try await reportingFailures {
            _ = try saga.openDispatcherStore()
            let report = try ConservationCheck(location: try saga.storeLocation).run()
            failed = !report.ok
            if json { return try printJSON(report) }
            print("\(report.ok ? "ok" : "FAILED"): \(report.ordersChecked) finished orders checked, \(report.inFlight) in flight")
            print("charged \(Money.format(cents: report.chargedCents)), refunded \(Money.format(cents: report.refundedCents)), completed orders \(Money.format(cents: report.completedAmountCents))")
            print("units taken from stock \(report.unitsTaken), units of completed orders \(report.completedUnits)")
            for v in report.violations { print("  - \(v.orderID ?? "all orders"): \(v.invariant): \(v.detail)") }
        }
        if failed { throw ExitCode(1) }
    }
}

struct GraphCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Draw the saga from the configuration: Mermaid (default), DOT, or SVG when Graphviz is installed.")
    @OptionGroup var saga: ConfigOptions
    @Option(help: "mermaid, dot or svg.") var format = "mermaid"
    @Option(name: .shortAndLong, help: "Write to this file instead of stdout.") var output: String?

    func validate() throws {
        guard ["mermaid", "dot", "svg"].contains(format) else { throw ValidationError("--format must be mermaid, dot or svg") }
    }

    func run() async throws {
        try await reportingFailures {
            let graph = SagaGraph(configuration: try saga.loadConfiguration())
            var text: String
            switch format {
            case "dot": text = graph.dot()
            case "svg": text = try Self.svg(graph.dot())
            default: text = graph.mermaid()
            }
            if !text.hasSuffix("\n") { text += "\n" }
            if let output {
                try text.write(toFile: output, atomically: true, encoding: .utf8)
            } else {
                print(text, terminator: "")
            }
        }
    }

    static func svg(_ dot: String) throws -> String {
        let paths = ["/usr/bin/dot", "/usr/local/bin/dot", "/opt/homebrew/bin/dot"]
        guard let path = paths.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CommandFailure(message: "SVG needs Graphviz's `dot` (apt-get install graphviz); or use --format dot or mermaid")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-Tsvg"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(dot.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CommandFailure(message: "dot failed with status \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self)
    }
}

struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "The retry, timeout and compensation logic of the loaded configuration, in plain words.")
    @OptionGroup var saga: ConfigOptions

    func run() async throws {
        try await reportingFailures {
            print(PolicyExplanation(configuration: try saga.loadConfiguration()).text())
        }
    }
}
