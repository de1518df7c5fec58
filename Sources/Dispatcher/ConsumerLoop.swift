import Broker
import Logging
import ServiceLifecycle
import Synchronization
import Workers

/// A group member that handles each polled batch as a whole, then commits it: for the
/// tracker and the compensation driver, whose work per batch is one store transaction or one
/// produce. A batch that fails is retried in place (never skipped, never committed early).
/// Commits run in their own task, one at a time with the latest offsets, so the next batch
/// is handled while the previous commit waits for its fsync.
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
        let pending = PendingOffsets()
        let committer = Task {
            while !Task.isCancelled {
                await pending.signal.wait(timeout: .milliseconds(200))
                await commit(pending.take(), consumer)
            }
        }
        // One batch is handled while the next is polled; batches are handled in order.
        var handling: Task<Bool, Never>?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let records = try await consumer.poll(maxRecords: batchSize, maxWait: .milliseconds(50))
            if records.isEmpty { continue }
            if let previous = handling, await previous.value == false { break }
            handling = Task { await handleUntilDone(records, pending) }
        }
        _ = await handling?.value
        committer.cancel()
        await committer.value
        await commit(pending.take(), consumer)
        await consumer.close()
    }

    /// Handles a batch, retrying in place until it succeeds; `false` if shutdown came first.
    private func handleUntilDone(_ records: [ConsumerRecord], _ pending: PendingOffsets) async -> Bool {
        var delay = Duration.milliseconds(50)
        while true {
            do {
                try await handle(records)
                pending.add(records)
                return true
            } catch {
                logger.error("handling a batch failed; retrying it", metadata: ["group": "\(group)", "error": "\(error)"])
                if Task.isShuttingDownGracefully || Task.isCancelled { return false }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    private func commit(_ offsets: [TopicPartition: Int64], _ consumer: any GroupConsumer) async {
        guard !offsets.isEmpty else { return }
        do {
            try await consumer.commit(offsets)
        } catch {
            logger.warning("offset commit refused; the batch will be handled again, idempotently", metadata: ["group": "\(group)", "error": "\(error)"])
        }
    }
}

/// Offsets handled and not yet committed, shared between a loop and its committer.
private final class PendingOffsets: Sendable {
    private let offsets = Mutex<[TopicPartition: Int64]>([:])
    let signal = Signal()

    func add(_ records: [ConsumerRecord]) {
        offsets.withLock { offsets in
            for record in records {
                offsets[record.topicPartition] = max(offsets[record.topicPartition] ?? 0, record.offset + 1)
            }
        }
        signal.signal()
    }

    func take() -> [TopicPartition: Int64] {
        offsets.withLock { offsets in
            defer { offsets.removeAll() }
            return offsets
        }
    }
}
