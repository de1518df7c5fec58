import ArgumentParser
import Broker

/// How a command reaches a Kafka cluster instead of the embedded broker.
struct KafkaOptions: ParsableArguments {
    @Option(name: .long, help: "Kafka bootstrap servers (host:port,...). Without it, the embedded broker in --data-dir is used.")
    var brokers: String?

    @Option(name: .customShort("X"), help: ArgumentHelp("A librdkafka property, key=value (repeatable), e.g. -X security.protocol=SASL_SSL.", valueName: "key=value"))
    var properties: [String] = []

    @Option(name: .long, help: "A file of librdkafka properties (key=value lines); -X wins over it.")
    var kafkaConfig: String?

    /// `nil` when no `--brokers` was given.
    func configuration() throws -> KafkaConfiguration? {
        guard let brokers else {
            if !properties.isEmpty || kafkaConfig != nil {
                throw CommandFailure(message: "-X and --kafka-config need --brokers")
            }
            return nil
        }
        var merged = try kafkaConfig.map(KafkaConfiguration.loadProperties(path:)) ?? [:]
        for property in properties {
            let (key, value) = try KafkaConfiguration.parseProperty(property)
            merged[key] = value
        }
        return KafkaConfiguration(bootstrapServers: brokers, properties: merged)
    }
}
