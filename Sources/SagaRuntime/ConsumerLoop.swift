import Logging
import Messaging
import ServiceLifecycle
import Synchronization

/// A group member that handles each polled batch as a whole, then commits it: for the
/// tracker and the compensation driver, whose work per batch is one store transaction or one
/// produce. Commits run in their own task, one at a time with the latest offsets, so the next
/// batch is handled while the previous commit waits for its fsync.
///
/// A batch that fails is retried in place (never committed early). When it keeps failing,
/// its records are tried one by one: if some succeed alone, the ones that still fail are the
/// batch's poison and are set aside on `<topic>.poison` (Spring's `DefaultErrorHandler`
/// does the same after its retries); if none succeeds, the fault is not the records' (a
/// store that is down) and the batch is retried until it goes through. A record that crashes
/// the process is found by the journal (`PoisonJournals`).
package struct ConsumerLoop: Sendable {
    let broker: any MessageBroker
    let group: String
    let topics: [String]
    let batchSize: Int
    let logger: Logger
    /// Where records in hand are noted (nil: no crash quarantine).
    var journal: PoisonJournal?
    /// What a quarantined record becomes besides its copy on `<topic>.poison`.
    var poisonOutcome: @Sendable (ConsumerRecord, String) -> [ProducerRecord] = { _, _ in [] }
    let handle: @Sendable ([ConsumerRecord]) async throws -> Void

    /// Attempts of a whole batch before its records are tried one by one.
    static let batchAttempts = 3

    package init(
        broker: any MessageBroker, group: String, topics: [String], batchSize: Int, logger: Logger, journal: PoisonJournal? = nil,
        poisonOutcome: @escaping @Sendable (ConsumerRecord, String) -> [ProducerRecord] = { _, _ in [] },
        handle: @escaping @Sendable ([ConsumerRecord]) async throws -> Void
    ) {
        self.broker = broker
        self.group = group
        self.topics = topics
        self.batchSize = batchSize
        self.logger = logger
        self.journal = journal
        self.poisonOutcome = poisonOutcome
        self.handle = handle
    }

    package func run() async throws {
        var configuration = ConsumerConfiguration()
        configuration.clientID = group
        let consumer = try await broker.makeConsumer(group: group, topics: topics, configuration: configuration)
        let pending = PendingOffsets()
        let journal = self.journal
        let committer = Task {
            while !Task.isCancelled {
                await pending.signal.wait(timeout: .milliseconds(200))
                await commit(pending.take(), consumer)
            }
        }
        // One batch is handled while the next is polled; batches are handled in order.
        var handling: Task<Bool, Never>?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let journal, journal.isCautious {
                // After a crash: one record at a time, alone in the process (see PoisonJournals).
                if let previous = handling, await previous.value == false { break }
                handling = nil
                await journal.takeTurn()
                let records = try await consumer.poll(maxRecords: 1, maxWait: .zero)
                if let record = records.first {
                    journal.tookAlone(record)
                    let done = await handleUntilDone(records, pending)
                    journal.handledAlone(record)
                    journal.endTurn()
                    if !done { break }
                } else {
                    journal.endTurn()
                    try? await Task.sleep(for: .milliseconds(5))
                }
                continue
            }
            let records: [ConsumerRecord]
            do {
                records = try await consumer.poll(maxRecords: batchSize, maxWait: .milliseconds(50))
            } catch let error as BrokerError where error.isRetriable && !error.isFatal {
                // A broker briefly away is waited out.
                logger.warning("the broker is not answering; polling again shortly", metadata: ["kafka.group": "\(group)", "error.message": "\(error)"])
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            if records.isEmpty { continue }
            journal?.took(records)
            if let previous = handling, await previous.value == false { break }
            handling = Task { await handleUntilDone(records, pending) }
        }
        _ = await handling?.value
        committer.cancel()
        await committer.value
        await commit(pending.take(), consumer)
        await consumer.close()
        journal?.close()
    }

    /// Handles a batch, retrying in place until it succeeds; `false` if shutdown came first.
    private func handleUntilDone(_ batch: [ConsumerRecord], _ pending: PendingOffsets) async -> Bool {
        var records = batch
        if let journal {
            let quarantined = records.filter { journal.isQuarantined(RecordCoordinates($0.topicPartition, $0.offset)) }
            if !quarantined.isEmpty {
                guard await setAside(quarantined, reason: "crashed the process twice while in hand (\(group))") else { return false }
                records.removeAll { journal.isQuarantined(RecordCoordinates($0.topicPartition, $0.offset)) }
            }
        }
        var delay = Duration.milliseconds(50)
        var attempts = 0
        while true {
            if records.isEmpty {
                pending.add(batch)
                return true
            }
            do {
                try await handle(records)
                pending.add(batch)
                return true
            } catch {
                attempts += 1
                logger.error("handling a batch failed; retrying it", metadata: ["kafka.group": "\(group)", "error.message": "\(error)"])
                if Task.isShuttingDownGracefully || Task.isCancelled { return false }
                if attempts >= Self.batchAttempts, records.count > 1 || batch.count > 1 {
                    guard let left = await isolatePoison(records) else { return false }
                    records = left
                    continue
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Tries each record alone (a few times each). Returns the records to retry as a batch:
    /// none when every record went through or was set aside, all of them when none succeeded
    /// alone (then the fault is not theirs). `nil` on shutdown.
    private func isolatePoison(_ records: [ConsumerRecord]) async -> [ConsumerRecord]? {
        var failed: [(ConsumerRecord, any Error)] = []
        var succeeded = 0
        for record in records {
            var lastError: (any Error)?
            for attempt in 0..<Self.batchAttempts {
                do {
                    try await handle([record])
                    lastError = nil
                    break
                } catch {
                    lastError = error
                    if Task.isShuttingDownGracefully || Task.isCancelled { return nil }
                    try? await Task.sleep(for: .milliseconds(20 << attempt))
                }
            }
            if let lastError { failed.append((record, lastError)) } else { succeeded += 1 }
        }
        if failed.isEmpty { return [] }
        guard succeeded > 0 else {
            logger.error("no record of the batch goes through alone either: retrying the batch (the store or broker is failing, not the records)", metadata: ["kafka.group": "\(group)"])
            try? await Task.sleep(for: .seconds(1))
            return records
        }
        for (record, error) in failed {
            guard await setAside([record], reason: "its handler failed \(Self.batchAttempts) times alone while the rest of its batch went through (\(group)): \(error)") else { return nil }
        }
        return []
    }

    /// Publishes quarantined records (their copies on `<topic>.poison` and what they become);
    /// `false` on shutdown before that succeeded.
    private func setAside(_ records: [ConsumerRecord], reason: String) async -> Bool {
        var outgoing: [ProducerRecord] = []
        for record in records {
            logger.error("record quarantined", metadata: [
                "kafka.group": "\(group)", "kafka.topic": "\(record.topic)", "kafka.partition": "\(record.partition)", "kafka.offset": "\(record.offset)",
            ])
            outgoing.append(PoisonRecord.make(record, reason: reason))
            outgoing += poisonOutcome(record, reason)
        }
        await PoisonRecord.ensureTopics(outgoing, on: broker)
        var delay = Duration.milliseconds(50)
        while true {
            do {
                _ = try await broker.produce(outgoing)
                return true
            } catch {
                logger.error("publishing quarantined records failed; retrying", metadata: ["error.message": "\(error)"])
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
            journal?.committed(offsets)
        } catch {
            logger.warning("offset commit refused; the batch will be handled again, idempotently", metadata: ["kafka.group": "\(group)", "error.message": "\(error)"])
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
