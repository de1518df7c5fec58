import Broker
import Logging

/// An embedded broker for a test in `dir`: no fsync, and a logger that keeps quiet
/// (the tests feed it frames it must refuse, each of which would log).
public func quietBroker(_ dir: String, label: String = "test") throws -> (EmbeddedBroker, Logger) {
    var configuration = EmbeddedBroker.Configuration(dataDirectory: dir)
    configuration.fsync = .never
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return (try EmbeddedBroker(configuration: configuration, logger: logger), logger)
}
