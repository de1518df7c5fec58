import ArgumentParser
import Broker
import Logging
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
        @Option(help: "Partitions.") var partitions = 12
        @Option(help: "Delivery delay in seconds (fractions allowed), for retry tiers.") var delaySeconds: Double = 0
        @Flag(name: .customLong("saga"), help: "Create every topic the saga configuration names (existing ones are checked, not changed).") var allSagaTopics = false

        func validate() throws {
            if (name == nil) == !allSagaTopics { throw ValidationError("give a topic name, or --saga for all of the saga's topics") }
        }

        func run() async throws {
            try await reportingFailures {
                let (broker, _) = try saga.openForWriting()
                defer { broker.shutdown() }
                if allSagaTopics {
                    let configuration = try saga.loadConfiguration()
                    try await SagaTopology.create(configuration, on: broker)
                    print("the saga's \(SagaTopology.specs(configuration).count) topics exist")
                    return
                }
                try await broker.createTopic(TopicSpec(name: name!, partitions: partitions, deliveryDelayMilliseconds: Int64(delaySeconds * 1000)))
                print("created \(name!) with \(partitions) partitions")
            }
        }
    }
}
