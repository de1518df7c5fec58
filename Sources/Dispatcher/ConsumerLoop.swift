import Broker
import Logging
import ServiceLifecycle

/// A group member that handles each polled batch as a whole, then commits it: for the
/// tracker and the compensation driver, whose work per batch is one store transaction or one
/// produce. A batch that fails is retried in place (never skipped, never committed early).
struct ConsumerLoop: Sendable {
    let broker: any MessageBroker
    let group: String
    let topics: [String]
    let batchSize: Int
    let logger: Logger
    let handle: @Sendable ([ConsumerRecord]) async throws -> Void

    func run() async throws {
        var configuration = ConsumerConfiguration()
        configuration.clientID = group
        let consumer = try await broker.makeConsumer(group: group, topics: topics, configuration: configuration)
        defer { Task { await consumer.close() } }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let records = try await consumer.poll(maxRecords: batchSize, maxWait: .milliseconds(50))
            if records.isEmpty { continue }
            var delay = Duration.milliseconds(50)
            while true {
                do {
                    try await handle(records)
                    break
                } catch {
                    logger.error("handling a batch failed; retrying it", metadata: ["group": "\(group)", "error": "\(error)"])
                    if Task.isShuttingDownGracefully || Task.isCancelled {
                        await consumer.close()
                        return
                    }
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
            do {
                try await consumer.commit(records: records)
            } catch {
                logger.warning("offset commit refused; the batch will be handled again, idempotently", metadata: ["group": "\(group)", "error": "\(error)"])
            }
        }
        await consumer.close()
    }
}
