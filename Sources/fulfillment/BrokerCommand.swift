import ArgumentParser
import Broker
import Foundation
import SagaDomain
import SagaAssembly
import OperatorHTTP
import FulfillmentMetrics
import KafkaWire
import Logging
import Messaging
import ServiceLifecycle

struct BrokerCommand: AsyncParsableCommand {

    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Serve the embedded broker's data directory over the Kafka protocol (kcat and other Kafka clients).",
        discussion: """
            Listens on --listen (loopback unless told otherwise) and serves the data directory to Kafka clients: produce (acks 0/1/all, idempotent producers), fetch, consumer groups with committed offsets, topic creation and deletion, list offsets. Record batches are stored as the client sent them (compressed ones too). Examples:
              kcat -b 127.0.0.1:9092 -L
              kcat -b 127.0.0.1:9092 -P -t orders -k order-1
              kcat -b 127.0.0.1:9092 -G my-group orders

            Listening on 0.0.0.0 (containers)? Pass --advertise with the address clients reach. Not served: transactions, static group membership (group.instance.id is ignored), ACLs on consumer groups. TLS with --tls-cert and --tls-key (clients: security.protocol=ssl), mutual TLS with --tls-client-ca, SASL (PLAIN, SCRAM-SHA-256/512) with --users FILE (see `fulfillment users add`); a --listen address other machines can reach needs SASL, client certificates or --allow-anonymous. Topics named in a Metadata request are created only with --auto-create-topics. Stop with Ctrl-C (SIGINT) or SIGTERM.
            """)

    @OptionGroup var data: DataDirectoryOptions
    @Option(help: "HOST:PORT to listen on (port 0: a free one, printed on stderr once listening).") var listen = "127.0.0.1:9092"
    @Option(help: "HOST:PORT clients are told to connect to (default: the --listen address); set it when listening on 0.0.0.0 or behind NAT.")
    var advertise: String?
    @Option(help: "Broker durability: always, batch, interval:MS, never.") var fsync: FsyncPolicy = .batch
    @Option(help: ArgumentHelp(
        "Under --fsync batch, milliseconds the group commit pauses between rounds to gather more appends.",
        discussion: "Fewer fsyncs under a steady stream of produce requests, each acknowledgement up to this much later; 0 syncs as soon as anything is pending."))
    var groupCommitSpacingMs = 2
    @Option(help: "Create a topic with this many partitions when a client's Metadata request names one that does not exist (off by default).")
    var autoCreateTopics: Int?
    @OptionGroup(title: "Who may connect") var security: ListenerSecurityOptions
    @OptionGroup(title: "Limits per client") var limits: ListenerLimitOptions
    @OptionGroup var http: HTTPOptions

    func validate() throws {
        _ = try http.address(default: "off")
        _ = try limits.limits()
    }

    func run() async throws {
        try await reportingFailures {
            let (host, port) = try parseListenAddress(listen)
            try security.checkExposure(host: host)
            let encryption = try security.encryption()
            let authenticator = try security.authenticator()
            if authenticator != nil && encryption == nil && !HostAddress.isLoopback(host) {
                writeStderr("note: SASL without TLS: SCRAM never sends the password, but PLAIN does, and no record is encrypted; add --tls-cert and --tls-key")
            }
            var configuration = EmbeddedBroker.Configuration(dataDirectory: data.dataDir)
            configuration.fsync = fsync
            guard (0...100).contains(groupCommitSpacingMs) else { throw CommandFailure(message: "--group-commit-spacing-ms must be 0-100") }
            configuration.groupCommitSpacing = .milliseconds(groupCommitSpacingMs)
            var logger = Logger(label: "kafka-listener") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .notice
            var operatorOptions = OperatorOptions()
            operatorOptions.http = try http.address(default: "off")
            let operatorSide = OperatorAssembly(options: operatorOptions, logger: logger)
            let broker = try EmbeddedBroker(configuration: configuration, metrics: BrokerMetrics(handles: operatorSide.backend.handles), logger: logger)
            defer { broker.shutdown() }
            var options = WireRequestHandler.Options()
            if let autoCreateTopics {
                guard autoCreateTopics > 0 else { throw CommandFailure(message: "--auto-create-topics needs a positive partition count") }
                options.autoCreatePartitions = autoCreateTopics
            }
            let advertised = try advertise.map { try parseListenAddress($0) }
            if host == "0.0.0.0" || host == "::", advertised == nil {
                writeStderr("note: clients are told to connect to \(host):\(port), which they cannot; pass --advertise HOST:PORT")
            }
            let listener = WireListener(
                broker: broker, host: host, port: port, advertised: advertised.map { (host: $0.0, port: $0.1) },
                limits: try limits.limits(), encryption: encryption, authenticator: authenticator, options: options, metrics: WireMetrics(handles: operatorSide.backend.handles), logger: logger)
            let service = WireListenerService(listener) { bound in
                writeStderr("Kafka protocol\(listener.protection) on \(host):\(bound), data in \(data.dataDir); stop with Ctrl-C")
            }
            // Health, readiness, metrics and topics: the broker hosts no saga, so no orders or writes.
            let operatorServices = operatorSide.services(
                node: nil, broker: broker, configuration: SagaConfiguration(), role: "broker", adminToken: nil, notice: { writeStderr($0) })
            var groupConfiguration = ServiceGroupConfiguration(
                services: ([service] + operatorServices).map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            // Connections are cut at once on a stop; what is durable is durable. The bounds only
            // guarantee that a stop ends.
            groupConfiguration.maximumGracefulShutdownDuration = .seconds(10)
            groupConfiguration.maximumCancellationDuration = .seconds(5)
            let group = ServiceGroup(configuration: groupConfiguration)
            do {
                try await group.run()
            } catch {
                throw CommandFailure(message: "the listener stopped: \(error)")
            }
        }
    }
}
