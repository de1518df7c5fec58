import ArgumentParser
import Broker
import Logging

struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics",
        abstract: "List or create topics of the embedded broker.",
        subcommands: [List.self, Create.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List topics with their partitions' begin and end offsets (read-only: works while `run` owns the data directory).")
        @OptionGroup var data: DataDirectoryOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                var configuration = EmbeddedBroker.Configuration(dataDirectory: data.dataDir)
                configuration.readOnly = true
                let broker = try EmbeddedBroker(configuration: configuration, logger: Logger(label: "topics"))
                defer { broker.shutdown() }
                let topics = try await broker.listTopics()
                if json {
                    try printJSON(topics)
                    return
                }
                if topics.isEmpty { print("no topics in \(data.dataDir)") }
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
        static let configuration = CommandConfiguration(abstract: "Create a topic (needs the data directory's owner stopped).")
        @OptionGroup var data: DataDirectoryOptions
        @Argument(help: "Topic name.") var name: String
        @Option(help: "Partitions.") var partitions = 12
        @Option(help: "Delivery delay in seconds (fractions allowed), for retry tiers.") var delaySeconds: Double = 0

        func run() async throws {
            try await reportingFailures {
                let broker = try EmbeddedBroker(dataDirectory: data.dataDir)
                defer { broker.shutdown() }
                try await broker.createTopic(TopicSpec(name: name, partitions: partitions, deliveryDelayMilliseconds: Int64(delaySeconds * 1000)))
                print("created \(name) with \(partitions) partitions")
            }
        }
    }
}
