import ArgumentParser
import Broker
import Foundation
import Logging
import KafkaWire

struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Serve the embedded broker's data directory over the Kafka protocol (kcat and other Kafka clients).",
        discussion: """
            Listens on --listen (loopback unless told otherwise) and answers ApiVersions 0-3,
            Metadata 0-4, Produce 3-7, Fetch 4-11, ListOffsets 1-2 and CreateTopics 0-4 from the data directory, so
            `kcat -b 127.0.0.1:9092 -L`, `kcat -P -t orders` and `kcat -C -t orders -e` work.
            Consumer groups and idempotent producers over the wire are not served
            yet. Stop with Ctrl-C (SIGINT) or SIGTERM.
            """)

    @OptionGroup var data: DataDirectoryOptions
    @Option(help: "HOST:PORT to listen on.") var listen = "127.0.0.1:9092"
    @Option(help: "Broker durability: always, batch, interval:MS, never.") var fsync: FsyncPolicy = .batch
    @Option(help: "Largest request accepted, in bytes; bigger ones close the connection.") var maxRequestBytes = 100 << 20

    func run() async throws {
        try await reportingFailures {
            let (host, port) = try parseListenAddress(listen)
            var configuration = EmbeddedBroker.Configuration(dataDirectory: data.dataDir)
            configuration.fsync = fsync
            var logger = Logger(label: "kafka-listener") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .notice
            let broker = try EmbeddedBroker(configuration: configuration, logger: logger)
            defer { broker.shutdown() }
            let listener = KafkaListener(broker: broker, host: host, port: port, maxRequestBytes: maxRequestBytes, logger: logger)
            let server = Task { try await listener.run { writeStderr("Kafka protocol on \(host):\(port), data in \(data.dataDir); stop with Ctrl-C") } }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await terminationSignal() }
                group.addTask { _ = try? await server.value }
                await group.next()
                server.cancel()
            }
            if case .failure(let error) = await server.result, !(error is CancellationError) {
                throw CommandFailure(message: "the listener stopped: \(error)")
            }
        }
    }
}
