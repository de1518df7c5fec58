import ArgumentParser
import KafkaClient
import Messaging

/// How a command reaches a Kafka cluster instead of the embedded broker.
struct KafkaOptions: ParsableArguments {
    @Option(name: .long, help: "Kafka bootstrap servers (host:port,...). Without it, the embedded broker in --data-dir is used.")
    var brokers: String?

    @Option(name: .customShort("X"), help: ArgumentHelp("A librdkafka property, key=value (repeatable), e.g. -X security.protocol=SASL_SSL.", valueName: "key=value"))
    var properties: [String] = []

    @Option(name: .long, help: "A file of librdkafka properties (key=value lines); -X wins over it.")
    var kafkaConfig: String?

    @Option(name: .long, help: "Seconds to wait for the Kafka cluster when it is not reachable yet (transport failures, timeouts, leaders or coordinators not available) before giving up.")
    var timeout: Double = 30

    /// `nil` when no `--brokers` was given.
    func configuration() throws -> KafkaConfiguration? {
        guard let brokers else {
            if !properties.isEmpty || kafkaConfig != nil {
                throw CommandFailure(message: "-X and --kafka-config need --brokers")
            }
            if timeout != 30 { throw CommandFailure(message: "--timeout is how long to wait for a Kafka cluster: it needs --brokers") }
            return nil
        }
        var merged = try kafkaConfig.map(KafkaConfiguration.loadProperties(path:)) ?? [:]
        for property in properties {
            let (key, value) = try KafkaConfiguration.parseProperty(property)
            merged[key] = value
        }
        guard timeout > 0 else { throw CommandFailure(message: "--timeout must be positive") }
        return KafkaConfiguration(bootstrapServers: brokers, properties: merged)
    }

    var timeoutDuration: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// Waits, up to --timeout, until the cluster answers (a metadata request): the first
    /// contact of every command, so a cluster still starting is waited for, not an error.
    func waitUntilReachable(_ broker: any MessageBroker) async throws {
        guard let brokers, broker is KafkaClusterClient else { return }
        _ = try await BrokerWait.retrying("reading cluster metadata", target: "the Kafka cluster at \(brokers)", timeout: timeoutDuration, status: writeStderr) {
            try await broker.listTopics()
        }
    }
}
