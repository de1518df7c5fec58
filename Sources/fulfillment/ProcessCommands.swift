import ArgumentParser
import Foundation
import KafkaClient
import Messaging
import OperatorHTTP
import ServiceLifecycle
import SagaAssembly
import SagaDomain

/// Options of the long-running processes of a distributed deployment.
struct ProcessOptions: ParsableArguments {
    @Option(help: "Handlers running at once in each worker (overrides workers.concurrency).") var concurrency: Int?
    @Option(help: "Fault profile of the simulated outside world: none, default, chaos, or one from the config.") var faults = "none"
    @Option(help: "Seconds between status lines on stderr.") var statusSeconds: Double = 10
    @Option(help: "A file rewritten with every status line, for health checks (fresh = alive).") var healthFile: String?
    @Option(help: "Where this process notes the records it has in hand, so a record that crashes it twice is set aside on <topic>.poison. Each instance takes the first free slot under it (DIR/ROLE, DIR/ROLE-2, ...); keep it across restarts.") var stateDir = "./fulfillment-state"

    func validate() throws {
        if let concurrency, concurrency <= 0 { throw ValidationError("--concurrency must be positive") }
        if statusSeconds <= 0 { throw ValidationError("--status-seconds must be positive") }
    }
}

extension SagaOptions {
    /// Runs some roles against the cluster of --brokers until SIGINT/SIGTERM.
    func serve(_ roles: Set<SagaNode.Role>, process: ProcessOptions, operatorOptions: OperatorOptions, createTopics: Bool, label: String) async throws {
        guard let broker = try kafkaBroker(label) else {
            throw CommandFailure(message: "--brokers is required: this command runs against a Kafka cluster (on one machine, `fulfillment run` hosts every role on the embedded broker)")
        }
        defer { broker.shutdown() }
        try await kafka.waitUntilReachable(broker)
        var configuration = try loadConfiguration()
        if let concurrency = process.concurrency { configuration.concurrency = concurrency }
        var saga = SagaProcess(
            broker: broker, configuration: configuration, storeLocation: try storeLocation, roles: roles, faults: process.faults,
            createTopics: createTopics, stateDirectory: process.stateDir, startTimeout: kafka.timeoutDuration, logger: logger(label))
        saga.operatorOptions = operatorOptions
        let healthFile = process.healthFile
        try await saga.run(statusInterval: .milliseconds(Int(process.statusSeconds * 1000))) { line in
            writeStderr("[\(label)] \(line)")
            if let healthFile { _ = FileManager.default.createFile(atPath: healthFile, contents: Data((line + "\n").utf8)) }
        }
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one step's worker against a Kafka cluster (scale out: start several).",
        discussion: """
            Consumes the step's topics (standard, priority and retry tiers) in the step's consumer group, so several instances share the partitions; when one stops or dies, its partitions move to the others and are re-handled idempotently from the last commit. Instances of one step must share its store (--store).

            Example: fulfillment worker payment --brokers kafka1:9092,kafka2:9092 --store sqlite:/var/lib/fulfillment
            """)

    enum Step: String, ExpressibleByArgument, CaseIterable {
        case payment, inventory, shipping, notification, compensation
    }

    @Argument(help: "payment, inventory, shipping, notification or compensation.") var step: Step
    @OptionGroup var saga: SagaOptions
    @OptionGroup var process: ProcessOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var lint: LintGate

    func validate() throws { _ = try http.address(default: "off") }

    func run() async throws {
        try await reportingFailures {
            try lint.check(try saga.loadConfiguration(), source: saga.settings.config)
            var operatorOptions = OperatorOptions()
            operatorOptions.http = try http.address(default: "off")
            try await saga.serve([SagaNode.Role(rawValue: step.rawValue)!], process: process, operatorOptions: operatorOptions, createTopics: false, label: step.rawValue)
        }
    }
}

struct DispatcherCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatcher",
        abstract: "Run the dispatcher against a Kafka cluster: intake, tracker, compensation driver, watchdog.",
        discussion: """
            Creates the saga's topics when missing (CreateTopics), validates and routes orders, records every order's history in its store, drives compensations from the dead-letter topics and recovers stuck orders. Also hosts the compensation worker unless --without-compensation-worker (then run `fulfillment worker compensation`).
            """)

    @OptionGroup var saga: SagaOptions
    @OptionGroup var process: ProcessOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var admin: AdminOptions
    @OptionGroup var lint: LintGate
    @Flag(help: "Do not host the compensation worker in this process.") var withoutCompensationWorker = false

    func validate() throws { _ = try http.address(default: "off") }

    func run() async throws {
        try await reportingFailures {
            try lint.check(try saga.loadConfiguration(), source: saga.settings.config)
            var roles: Set<SagaNode.Role> = [.dispatcher]
            if !withoutCompensationWorker { roles.insert(.compensation) }
            var operatorOptions = OperatorOptions()
            operatorOptions.http = try http.address(default: "off")
            try admin.apply(to: &operatorOptions)
            try await saga.serve(roles, process: process, operatorOptions: operatorOptions, createTopics: true, label: "dispatcher")
        }
    }
}

struct KafkaMockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-mock",
        abstract: "Serve librdkafka's mock Kafka cluster on loopback, with the saga's topics (for trying and testing scale-out without Kafka).",
        discussion: """
            Prints the bootstrap servers as the first line on stdout, then serves until SIGINT/SIGTERM. The mock speaks the real Kafka protocol (producers, consumer groups, commits) but keeps everything in memory and has no CreateTopics: the saga's topics from --config are made here.

            With --inject-faults N it also misbehaves as a real cluster does, N times on a schedule fixed by --fault-seed: a broker off the network for up to 2 s, or the next Produce, Fetch or OffsetCommit requests answered with NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS or NOT_COORDINATOR. Each fault is one line on stderr; "faults done" follows the last.
            """)

    @Option(help: "Mock brokers.") var brokerCount = 3
    @OptionGroup var settings: ConfigOptions
    @Option(help: "Extra topics to create, NAME:PARTITIONS (repeatable).") var topic: [String] = []
    @Option(help: "Inject this many broker faults, then serve cleanly (0: none).") var injectFaults = 0
    @Option(help: "Seed of the fault schedule (the same seed, the same faults in the same order).") var faultSeed: UInt64 = 1
    @Option(help: "Milliseconds between faults, on average.") var faultIntervalMs = 2_000

    func validate() throws {
        guard (1...16).contains(brokerCount) else { throw ValidationError("--broker-count must be 1-16") }
        guard injectFaults >= 0 else { throw ValidationError("--inject-faults must be 0 or more") }
        guard (10...600_000).contains(faultIntervalMs) else { throw ValidationError("--fault-interval-ms must be 10-600000") }
    }

    func run() async throws {
        try await reportingFailures {
            let cluster = try KafkaMockCluster(brokers: brokerCount)
            for spec in SagaTopology.specs(try settings.loadConfiguration()) {
                try cluster.createTopic(spec.name, partitions: spec.partitions, replicationFactor: 3)
            }
            for extra in topic {
                let parts = extra.split(separator: ":")
                guard parts.count == 2, let partitions = Int(parts[1]), partitions > 0 else {
                    throw CommandFailure(message: "--topic must look like NAME:PARTITIONS, got '\(extra)'")
                }
                try cluster.createTopic(String(parts[0]), partitions: partitions, replicationFactor: 3)
            }
            FileHandle.standardOutput.write(Data((cluster.bootstrapServers + "\n").utf8))
            writeStderr("mock Kafka cluster with \(brokerCount) brokers on \(cluster.bootstrapServers); stop with Ctrl-C")
            var services: [any Service] = [ServedUntilShutdown()]
            if injectFaults > 0 {
                let schedule = MockClusterFaultSchedule(
                    seed: faultSeed, brokers: brokerCount, count: injectFaults, interval: .milliseconds(faultIntervalMs))
                services.append(MockFaultInjector(cluster: cluster, schedule: schedule))
            }
            let group = ServiceGroup(configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: quietLogger("kafka-mock")))
            try await group.run()
            withExtendedLifetime(cluster) {}
        }
    }
}

/// Applies a fault schedule to the mock cluster, one line on stderr per fault, then idles.
struct MockFaultInjector: Service {
    let cluster: KafkaMockCluster
    let schedule: MockClusterFaultSchedule

    func run() async throws {
        var number = 0
        for step in schedule {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: step.after) }
            number += 1
            writeStderr("fault \(number): \(step.fault)")
            try await cluster.inject(step.fault)
        }
        writeStderr("faults done: \(number)")
        try? await gracefulShutdown()
    }
}

/// What a command that only hosts something (`kafka-mock`'s in-process cluster) runs in its
/// `ServiceGroup`: nothing, until the group's graceful shutdown (SIGINT/SIGTERM).
struct ServedUntilShutdown: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}
