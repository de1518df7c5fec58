import ArgumentParser
import Broker
import Dispatcher
import Foundation
import KafkaClient
import KafkaWire
import Logging
import Messaging
import OperatorHTTP
import SagaAssembly
import SagaDomain
import StoreDatabase
import WireSecurity

/// `--data-dir`: declared here once, for every command that uses it.
struct DataDirectoryOptions: ParsableArguments {
    @Option(name: .long, help: "The embedded broker's data directory (topics, and the stores unless --store says otherwise).")
    var dataDir: String = "./fulfillment-data"
}

/// `--store`: where the step and dispatcher stores live.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Where the step and dispatcher stores live: sqlite:DIR (one SQLite file per service) or postgres://USER[:PASSWORD]@HOST:PORT/DATABASE (one schema per service; instances on several machines share it). Default: sqlite:<data-dir>.")
    var store: String?

    /// A directory of SQLite files, or a PostgreSQL URL.
    func location(dataDir: String) throws -> String {
        guard let store else { return dataDir }
        if store.hasPrefix("sqlite:") { return String(store.dropFirst("sqlite:".count)) }
        if StoreConnection.isPostgres(store) { return store }
        throw CommandFailure(message: "--store must look like sqlite:DIR or postgres://USER@HOST:PORT/DATABASE, got '\(store)'")
    }
}

/// `--config`: the saga configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Saga configuration (YAML). Default: config/fulfillment.yaml if it exists, else the built-in seed policy.")
    var config: String?

    func loadConfiguration() throws -> SagaConfiguration {
        if let config { return try SagaConfiguration.load(path: config) }
        if FileManager.default.fileExists(atPath: "config/fulfillment.yaml") {
            return try SagaConfiguration.load(path: "config/fulfillment.yaml")
        }
        return SagaConfiguration()
    }
}

/// `--log-level`, for commands that log.
struct LogOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = logLevel
        return logger
    }
}

/// What commands that read the saga's stores share: where the data is.
protocol StoreReading {
    var data: DataDirectoryOptions { get }
    var storeOptions: StoreOptions { get }
}

extension StoreReading {
    var dataDir: String { data.dataDir }

    /// Where the stores are: a directory of SQLite files, or a PostgreSQL URL.
    var storeLocation: String { get throws { try storeOptions.location(dataDir: dataDir) } }

    /// Whether a dispatcher store may be there to open: a PostgreSQL database always may
    /// (its schemas are created on first use); a directory only once its file exists.
    static func hasDispatcherStore(_ location: String) -> Bool {
        StoreConnection.isPostgres(location) || FileManager.default.fileExists(atPath: location + "/dispatcher.sqlite")
    }

    /// The dispatcher's store, read-only; says where to look when there is none.
    func openDispatcherStore() throws -> DispatcherStore {
        let location = try storeLocation
        guard Self.hasDispatcherStore(location) else {
            throw CommandFailure(message: "no saga data in \(location): run `fulfillment run` (or the dispatcher) first, or pass --data-dir / --store")
        }
        return try DispatcherStore(location: location, readOnly: true)
    }
}

/// Options of commands that only read the stores (`order`, `check`).
struct StoreReadOptions: ParsableArguments, StoreReading {
    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var storeOptions: StoreOptions
}

/// Options of `run`: the embedded broker in --data-dir, the stores, the configuration.
struct LocalSagaOptions: ParsableArguments, StoreReading {
    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var settings: ConfigOptions
    @OptionGroup var log: LogOptions
}

/// Options of every command that works on the embedded broker or, with --brokers, a Kafka
/// cluster: where the data is and which configuration applies.
struct SagaOptions: ParsableArguments, StoreReading {
    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var settings: ConfigOptions
    @OptionGroup var log: LogOptions
    @OptionGroup var kafka: KafkaOptions

    func loadConfiguration() throws -> SagaConfiguration { try settings.loadConfiguration() }
    func logger(_ label: String) -> Logger { log.logger(label) }

    /// The Kafka cluster named by --brokers, with the retry tiers' delays of the configuration.
    func kafkaBroker(_ label: String) throws -> KafkaClusterClient? {
        guard let configuration = try kafka.configuration() else { return nil }
        let specs = SagaTopology.specs(try loadConfiguration())
        return try KafkaClusterClient(
            configuration: configuration,
            topicDelays: Dictionary(specs.map { ($0.name, $0.deliveryDelayMilliseconds) }, uniquingKeysWith: max),
            clientID: "fulfillment-\(label)", logger: logger(label))
    }

    /// Opens the broker and the dispatcher store for inspection: works while `run` owns the data directory.
    func openReadOnly() async throws -> (any MessageBroker, DispatcherStore) {
        let store = try openDispatcherStore()
        if let kafka = try kafkaBroker("inspect") {
            try await self.kafka.waitUntilReachable(kafka)
            return (kafka, store)
        }
        var configuration = EmbeddedBroker.Configuration(dataDirectory: dataDir)
        configuration.readOnly = true
        return (try EmbeddedBroker(configuration: configuration, logger: logger("inspect")), store)
    }

    /// Opens the broker to write (and the dispatcher store); says what to do when `run` holds
    /// the embedded broker's data directory.
    func openForWriting() async throws -> (any MessageBroker, DispatcherStore?) {
        let location = try storeLocation
        let store = Self.hasDispatcherStore(location) ? try DispatcherStore(location: location) : nil
        if let kafka = try kafkaBroker("write") {
            try await self.kafka.waitUntilReachable(kafka)
            return (kafka, store)
        }
        do {
            let broker = try EmbeddedBroker(dataDirectory: dataDir, logger: logger("write"))
            return (broker, store)
        } catch let error as BrokerError where error.code == .dataDirectoryLocked {
            throw CommandFailure(message: "\(error.message)\nThis command writes to the topics, so it needs the owner stopped (stop `fulfillment run` with Ctrl-C, run this, then start it again).")
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--http`: the operator listener of a long-running process.
struct HTTPOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Serve /healthz, /readyz, /metrics, the admin API (/api/) and the web console on HOST:PORT, or off.",
        discussion: "Default: 127.0.0.1:8080 for run, off for worker, dispatcher and broker. Port 0 takes a free port and says which."))
    var http: String?

    func address(default fallback: String) throws -> HTTPAddress {
        do { return try HTTPAddress.parse(http ?? fallback) } catch let error as HTTPAddressError { throw ValidationError(error.message) }
    }
}

/// Options of the processes that take admin writes and evaluate alerts (`run`, `dispatcher`).
struct AdminOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "File whose first line is the admin API's bearer token (16 characters at least).",
        discussion: "Writes (POST /api/orders, redrive) need it as Authorization: Bearer <token>. Without it a token is generated at start: run writes it to <data-dir>/admin-token, the dispatcher to <state-dir>/admin-token (never printed). A --http address other machines can reach needs this file."))
    var adminTokenFile: String?
    @Option(help: "POST each alert that fires or resolves to this URL, in Alertmanager's webhook format (version 4).")
    var alertWebhook: String?

    func apply(to options: inout OperatorOptions) throws {
        options.adminTokenFile = adminTokenFile
        if let alertWebhook {
            guard let url = URL(string: alertWebhook), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw ValidationError("--alert-webhook must be an http:// or https:// URL, got '\(alertWebhook)'")
            }
            options.alertWebhook = url
        }
    }
}

/// Who may reach a Kafka protocol listener (`broker`, `run --listen`) and how connections are
/// protected: TLS, mutual TLS, or an explicit --allow-anonymous for a reachable address.
struct ListenerSecurityOptions: ParsableArguments {
    @Option(help: ArgumentHelp("PEM certificate chain of the Kafka listener: clients connect with security.protocol=ssl.", valueName: "file"))
    var tlsCert: String?
    @Option(help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?
    @Option(help: ArgumentHelp(
        "PEM CA certificate(s): clients must present a certificate it signed (mutual TLS).",
        discussion: "With it, only clients holding such a certificate get in, so a --listen address other machines can reach is allowed without --allow-anonymous.",
        valueName: "file"))
    var tlsClientCa: String?
    @Option(help: ArgumentHelp(
        "SASL users file (`fulfillment users add`): every client authenticates (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and may touch only the topics its user is granted.",
        discussion: "Clients: security.protocol=sasl_ssl (with --tls-cert) or sasl_plaintext, sasl.mechanism=SCRAM-SHA-512, sasl.username, sasl.password. PLAIN sends the password as is: use it over TLS.",
        valueName: "file"))
    var users: String?
    @Flag(help: ArgumentHelp(
        "Serve a --listen address other machines can reach to clients that need not say who they are.",
        discussion: "Without --users (SASL) or client certificates (--tls-client-ca), whoever reaches the listener reads and writes every topic. Without this flag such a --listen refuses to start; use it only on a trusted network."))
    var allowAnonymous = false

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsClientCa != nil && tlsCert == nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)") }
    }

    /// TLS for the listener, loaded now so a bad file stops the command before it listens.
    func encryption() throws -> ListenerTLS? {
        guard let tlsCert, let tlsKey else { return nil }
        do {
            return try ListenerTLS(certificatePath: tlsCert, keyPath: tlsKey, clientCAPath: tlsClientCa)
        } catch let error as ListenerTLSError {
            throw CommandFailure(message: error.description)
        }
    }

    /// SASL over the users file, loaded now so a bad file stops the command before it listens.
    func authenticator() throws -> UsersAuthenticator? {
        guard let users else { return nil }
        do {
            let file = try UsersFile.load(users)
            if file.users.isEmpty { throw CommandFailure(message: "--users \(users) has no users: add one with `fulfillment users add NAME --users \(users)`") }
            return UsersAuthenticator(file)
        } catch let error as UsersFileError {
            throw CommandFailure(message: error.description)
        }
    }

    /// Refuses a listener other machines can reach whose clients are anonymous, unless
    /// --allow-anonymous says so. SASL users or client certificates name every client.
    func checkExposure(host: String) throws {
        guard !HostAddress.isLoopback(host), users == nil, tlsClientCa == nil, !allowAnonymous else { return }
        throw CommandFailure(message: """
            --listen \(host) can be reached from other machines, and its clients would be anonymous (no --users\(tlsCert == nil ? ", no TLS" : "; TLS encrypts but names nobody")): anyone who reaches it could read and write every topic.
            Listen on 127.0.0.1, require SASL with --users FILE or client certificates with --tls-client-ca, or pass --allow-anonymous to accept that (a trusted network).
            """)
    }
}

/// The limits of a Kafka protocol listener (`broker`, `run --listen`): what one client may hold.
struct ListenerLimitOptions: ParsableArguments {
    @Option(help: "Open Kafka connections at most, all clients together; more are closed at once.")
    var maxConnections = ListenerLimits().maxConnections
    @Option(help: "Open Kafka connections at most from one client address.")
    var maxConnectionsPerAddress = ListenerLimits().maxConnectionsPerAddress
    @Option(help: ArgumentHelp(
        "Largest request frame accepted, in bytes; a bigger one closes the connection.",
        discussion: "A produce batch travels inside one request, so this also caps a batch. Default 16 MiB."))
    var maxRequestBytes = ListenerLimits().maxFrameBytes
    @Option(help: "Seconds a request frame may take to arrive once its first byte has (cuts off a byte-a-second sender).")
    var requestDeadline: Double = 30
    @Option(help: "Seconds a connection may send and receive nothing before it is closed (Kafka's connections.max.idle.ms is 540 s too).")
    var idleTimeout: Double = 540
    @Option(help: "Requests one connection may have unanswered; past it the listener stops reading that connection until an answer goes out.")
    var maxInFlight = ListenerLimits().maxInFlightRequests

    func limits() throws -> ListenerLimits {
        var limits = ListenerLimits()
        limits.maxConnections = maxConnections
        limits.maxConnectionsPerAddress = maxConnectionsPerAddress
        limits.maxFrameBytes = maxRequestBytes
        limits.maxInFlightRequests = maxInFlight
        guard requestDeadline > 0, requestDeadline <= 86_400 else {
            throw ValidationError("--request-deadline must be between 0 and 86400 seconds, got \(requestDeadline)")
        }
        guard idleTimeout > 0, idleTimeout <= 604_800 else {
            throw ValidationError("--idle-timeout must be between 0 and 604800 seconds (a week), got \(idleTimeout)")
        }
        limits.frameDeadline = .milliseconds(Int64((requestDeadline * 1000).rounded(.up)))
        limits.idleTimeout = .milliseconds(Int64((idleTimeout * 1000).rounded(.up)))
        if let problem = limits.problem() { throw ValidationError(problem) }
        return limits
    }
}
