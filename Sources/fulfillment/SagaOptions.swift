import ArgumentParser
import Broker
import Dispatcher
import Foundation
import Logging
import SagaDomain

/// Options of every saga command: where the data is and which configuration applies.
struct SagaOptions: ParsableArguments {
    @Option(name: .long, help: "The embedded broker's data directory (topics, stores).")
    var dataDir: String = "./fulfillment-data"

    @Option(name: .long, help: "Saga configuration (YAML). Default: config/fulfillment.yaml if it exists, else the built-in seed policy.")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    func loadConfiguration() throws -> SagaConfiguration {
        if let config { return try SagaConfiguration.load(path: config) }
        if FileManager.default.fileExists(atPath: "config/fulfillment.yaml") {
            return try SagaConfiguration.load(path: "config/fulfillment.yaml")
        }
        return SagaConfiguration()
    }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = logLevel
        return logger
    }

    /// Opens the data directory for inspection: works while `run` owns it.
    func openReadOnly() throws -> (EmbeddedBroker, DispatcherStore) {
        guard FileManager.default.fileExists(atPath: dataDir + "/dispatcher.sqlite") else {
            throw CommandFailure(message: "no saga data in \(dataDir): run `fulfillment run` first, or pass --data-dir")
        }
        var configuration = EmbeddedBroker.Configuration(dataDirectory: dataDir)
        configuration.readOnly = true
        return (try EmbeddedBroker(configuration: configuration, logger: logger("inspect")), try DispatcherStore(directory: dataDir, readOnly: true))
    }

    /// Opens the data directory to write; says what to do when `run` holds it.
    func openForWriting() throws -> (EmbeddedBroker, DispatcherStore) {
        do {
            let broker = try EmbeddedBroker(dataDirectory: dataDir, logger: logger("write"))
            return (broker, try DispatcherStore(directory: dataDir))
        } catch let error as BrokerError where error.code == .dataDirectoryLocked {
            throw CommandFailure(message: "\(error.message)\nThis command writes to the topics, so it needs the owner stopped (stop `fulfillment run` with Ctrl-C, run this, then start it again).")
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
