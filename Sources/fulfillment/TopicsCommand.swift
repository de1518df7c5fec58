import ArgumentParser
import Broker
import Logging
import Messaging
import SagaAssembly

struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics",
        abstract: "List or create topics, on the embedded broker or (with --brokers) a Kafka cluster.",
        subcommands: [List.self, Create.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List topics with their partitions' begin and end offsets (read-only: works while `run` owns the data directory).")
        @OptionGroup var saga: SagaOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let broker: any MessageBroker
                if let kafka = try saga.kafkaBroker("topics") {
                    try await saga.kafka.waitUntilReachable(kafka)
                    broker = kafka
                } else {
                    var configuration = EmbeddedBroker.Configuration(dataDirectory: saga.dataDir)
                    configuration.readOnly = true
                    broker = try EmbeddedBroker(configuration: configuration, logger: Logger(label: "topics"))
                }
                defer { broker.shutdown() }
                let topics = try await broker.listTopics()
                if json {
                    try printJSON(topics)
                    return
                }
                if topics.isEmpty { print("no topics") }
                for topic in topics {
                    let records = topic.partitions.reduce(Int64(0)) { $0 + $1.endOffset - $1.beginOffset }
                    let delay = topic.spec.deliveryDelayMilliseconds > 0 ? ", delay \(topic.spec.deliveryDelayMilliseconds) ms" : ""
                    print("\(topic.name)  \(topic.partitions.count) partitions, \(records) records\(delay)")
                    for p in topic.partitions { print("  \(p.partition): \(p.beginOffset)..<\(p.endOffset)") }
                }
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create one topic, or with --saga every topic of the configuration (the embedded broker needs its owner stopped).",
            discussion: "On Kafka, retry-tier delays are not a topic setting: workers take them from the configuration.")
        @OptionGroup var saga: SagaOptions
        @Argument(help: "Topic name (omit with --saga).") var name: String?
        @Option(help: "Partitions of each topic created (with --saga: of each missing saga topic; default there: the configuration's `partitions`).") var partitions: Int?
        @Option(help: "Delivery delay in seconds (fractions allowed), for retry tiers (one topic only; --saga takes the configuration's).") var delaySeconds: Double = 0
        @Flag(name: .customLong("saga"), help: "Create every topic the saga configuration names (existing ones are adopted as they are, whatever their partition count).") var allSagaTopics = false

        func validate() throws {
            if (name == nil) == !allSagaTopics { throw ValidationError("give a topic name, or --saga for all of the saga's topics") }
            if let partitions, partitions <= 0 { throw ValidationError("--partitions must be positive") }
            if allSagaTopics && delaySeconds != 0 { throw ValidationError("--delay-seconds is for one topic; with --saga the retry tiers' delays come from the configuration") }
        }

        func run() async throws {
            try await reportingFailures {
                let (broker, _) = try await saga.openForWriting()
                defer { broker.shutdown() }
                if allSagaTopics {
                    let configuration = try saga.loadConfiguration()
                    try await SagaTopology.create(configuration, on: broker, partitions: partitions, logger: saga.logger("topics"))
                    print("the saga's \(SagaTopology.specs(configuration).count) topics exist (missing ones created with \(partitions ?? configuration.partitions) partitions, existing ones adopted as they are)")
                    return
                }
                try await broker.createTopic(TopicSpec(name: name!, partitions: partitions ?? 12, deliveryDelayMilliseconds: Int64(delaySeconds * 1000)))
                print("created \(name!) with \(partitions ?? 12) partitions")
            }
        }
    }
}
