import IOThreads
import Logging
import Messaging
import SagaDomain
import ServiceLifecycle
import StoreDatabase
import Synchronization

/// How a worker consumes and pipelines.
public struct WorkerRuntimeConfiguration: Sendable {
    /// The consumer group (one per step; the priority lane uses `<group>.priority`).
    public var group: String
    /// The standard lane: the request topic and its retry tiers.
    public var standardTopics: [String]
    /// The VIP lane, drained first.
    public var priorityTopics: [String]
    public var policy: StepPolicy
    public var router: RetryRouter
    /// Handlers running at once.
    public var concurrency = 64
    /// Records taken per poll, and the most results applied in one store transaction.
    public var batchSize = 500
    /// While VIP traffic lasts, at least one standard poll in every `starvationGuard` polls.
    public var starvationGuard = 8
    /// How long a graceful shutdown lets running handlers finish before handing them back.
    public var shutdownGrace: Duration = .seconds(5)
    /// Where the records in hand are noted, so that a record that crashes the process twice
    /// is set aside (`nil`: no quarantine, as in tests that host a runtime alone).
    public var journal: PoisonJournal?
    /// What a quarantined record becomes besides its copy on `<topic>.poison`; by default a
    /// dead letter (so the order is compensated, or parked when it is a compensation).
    public var poisonOutcome: (@Sendable (InboundMessage, String) -> [ProducerRecord])?

    public init(group: String, standardTopics: [String], priorityTopics: [String], policy: StepPolicy, router: RetryRouter) {
        self.group = group
        self.standardTopics = standardTopics
        self.priorityTopics = priorityTopics
        self.policy = policy
        self.router = router
    }
}

/// The generic worker: consume -> idempotent handle -> publish -> commit, for every step and
/// for compensation.
///
/// Messages are handled concurrently (up to `concurrency`), one at a time per order. Finished
/// results are gathered by a flusher that applies them in one store transaction, publishes
/// what they produce (next requests, retries, dead letters) in one produce call, and only
/// once that is durable commits offsets, each partition up to its first unfinished message.
/// A hanging handler therefore delays only the commit of its partition, never other orders.
public final class WorkerRuntime<Handler: StepHandler>: Service {
    private enum Outcome: Sendable {
        case work(Handler.Work)
        case failed(StepFailure)
        case recorded([ProducerRecord])
    }

    private struct Running {
        var message: InboundMessage
        var task: Task<Void, Never>?
        var deadline: ContinuousClock.Instant
        var heartbeat: Heartbeat
        var cancelReason: StepFailure?
    }

    private struct Finished {
        var token: Int
        var message: InboundMessage
        var outcome: Outcome
    }

    private struct State {
        var ledger = PipelineLedger()
        var nextToken = 0
        var queued: [Int: (InboundMessage, Outcome?)] = [:]
        var running: [Int: Running] = [:]
        /// Messages free to start, waiting for a handler slot; VIP messages go first.
        var readyVIP: [(Int, InboundMessage)] = []
        var readyStandard: [(Int, InboundMessage)] = []
        var finished: [Finished] = []
        var stopping = false
    }

    public let handler: Handler
    public let configuration: WorkerRuntimeConfiguration
    public let metrics: WorkerMetrics
    private let broker: any MessageBroker
    private let logger: Logger
    private let state = Mutex(State())
    private let capacitySignal = Signal()
    /// The group members, once made; the revoke hook commits through them.
    private let members = Mutex<[any GroupConsumer]>([])
    private let flushSignal = Signal()
    private let commitSignal = Signal()

    /// Messages taken and not yet committed at most: enough for several batches to be in
    /// different stages (handling, applying, publishing) at once.
    private var capacity: Int { max(configuration.concurrency * 4, configuration.batchSize * 4) }

    public init(broker: any MessageBroker, handler: Handler, configuration: WorkerRuntimeConfiguration, metrics: WorkerMetrics? = nil, logger: Logger) {
        self.broker = broker
        self.handler = handler
        self.configuration = configuration
        self.metrics = metrics ?? WorkerMetrics(name: handler.name)
        var logger = logger
        logger[metadataKey: "saga.worker"] = "\(handler.name)"
        self.logger = logger
    }

    public func run() async throws {
        var consumerConfiguration = ConsumerConfiguration()
        consumerConfiguration.clientID = configuration.group
        // Before partitions move to another member, commit what is finished, so the new owner
        // does not redo it (it would be harmless, being idempotent, but wasted).
        consumerConfiguration.onRevoke = { [weak self] _ in
            guard let self else { return }
            await self.commit(self.members.withLock { $0 })
        }
        let standard = try await broker.makeConsumer(group: configuration.group, topics: configuration.standardTopics, configuration: consumerConfiguration)
        let priority = configuration.priorityTopics.isEmpty
            ? nil
            : try await broker.makeConsumer(group: configuration.group + ".priority", topics: configuration.priorityTopics, configuration: consumerConfiguration)
        let consumers = [standard] + (priority.map { [$0] } ?? [])
        members.withLock { $0 = consumers }

        // Two flushers: while one waits for its transaction or its produce to be durable, the
        // other applies and publishes the next batch.
        let flusher = Task {
            await withDiscardingTaskGroup { group in
                for _ in 0..<2 { group.addTask { await self.flushLoop() } }
            }
        }
        let committer = Task { await self.commitLoop(consumers: consumers) }
        let deadlines = Task { await self.deadlineLoop() }
        // A broker briefly away (retriable errors) is waited out; anything else stops the worker.
        while true {
            do {
                try await pollLoop(standard: standard, priority: priority)
                break
            } catch let error as BrokerError where error.isRetriable && !error.isFatal {
                logger.warning("the broker is not answering; polling again shortly", metadata: ["error.message": "\(error)"])
                try? await Task.sleep(for: .milliseconds(500))
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
            } catch {
                logger.error("worker stopped by an error", metadata: ["error.message": "\(error)"])
                break
            }
        }
        // Graceful shutdown: no new work; let running handlers finish, then hand back the rest
        // (messages not started are simply not committed: they are redelivered after restart).
        state.withLock { state in
            state.stopping = true
            for _ in 0..<(state.readyVIP.count + state.readyStandard.count + state.queued.count) { state.ledger.abandoned() }
            state.readyVIP.removeAll()
            state.readyStandard.removeAll()
            state.queued.removeAll()
        }
        let graceEnd = ContinuousClock.now + configuration.shutdownGrace
        while state.withLock({ !$0.running.isEmpty }), ContinuousClock.now < graceEnd {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let abandoned = state.withLock { state -> [Task<Void, Never>] in
            state.running.values.compactMap(\.task)
        }
        for task in abandoned { task.cancel() }
        for task in abandoned { await task.value }
        flushSignal.signal()
        deadlines.cancel()
        await flusher.value
        committer.cancel()
        await committer.value
        await commit(consumers)
        for consumer in consumers { await consumer.close() }
        configuration.journal?.close()
        logger.debug("worker stopped")
    }

    // MARK: Polling

    private func pollLoop(standard: any GroupConsumer, priority: (any GroupConsumer)?) async throws {
        var priorityStreak = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let journal = configuration.journal, journal.isCautious {
                try await handleAlone(standard: standard, priority: priority, journal: journal)
                continue
            }
            let room = state.withLock { capacity - $0.ledger.taken }
            if room <= 0 {
                await capacitySignal.wait(timeout: .milliseconds(100))
                continue
            }
            let take = min(room, configuration.batchSize)
            var records: [ConsumerRecord] = []
            if let priority, priorityStreak < configuration.starvationGuard {
                records = try await priority.poll(maxRecords: take, maxWait: .zero)
            }
            if records.isEmpty {
                priorityStreak = 0
                let idle = state.withLock { $0.ledger.taken == 0 }
                records = try await standard.poll(maxRecords: take, maxWait: priority == nil || idle ? .milliseconds(20) : .zero)
                if records.isEmpty && priority != nil && !idle {
                    await capacitySignal.wait(timeout: .milliseconds(2))
                }
            } else {
                priorityStreak += 1
            }
            if !records.isEmpty {
                configuration.journal?.took(records)
                await accept(records)
            }
        }
    }

    /// After a crash: one record at a time, and only while no other consumer of the process
    /// has one in hand, so a second crash names exactly the record that caused it.
    private func handleAlone(standard: any GroupConsumer, priority: (any GroupConsumer)?, journal: PoisonJournal) async throws {
        while state.withLock({ $0.ledger.taken > 0 }) { await capacitySignal.wait(timeout: .milliseconds(5)) }
        await journal.takeTurn()
        // The turn is held only while a record is; polls do not wait in it.
        var records = try await priority?.poll(maxRecords: 1, maxWait: .zero) ?? []
        if records.isEmpty { records = try await standard.poll(maxRecords: 1, maxWait: .zero) }
        guard let record = records.first else {
            journal.endTurn()
            try? await Task.sleep(for: .milliseconds(5))
            return
        }
        journal.tookAlone(record)
        await accept(records)
        while state.withLock({ $0.ledger.taken > 0 }) { await capacitySignal.wait(timeout: .milliseconds(2)) }
        journal.handledAlone(record)
        journal.endTurn()
    }

    private func accept(_ records: [ConsumerRecord]) async {
        let messages = records.map(InboundMessage.init(record:))
        let recorded: [Int: HandlerResult]
        do {
            let handler = self.handler
            recorded = try await BlockingIO.run { try handler.recordedOutcomes(for: messages) }
        } catch {
            logger.warning("could not read recorded outcomes; handling the batch afresh", metadata: ["error.message": "\(error)"])
            recorded = [:]
        }
        metrics.add(WorkerMetrics.handled, messages.count)
        var toStart: [(Int, InboundMessage)] = []
        var finishedNow: [Finished] = []
        state.withLock { state in
            for (i, message) in messages.enumerated() {
                let token = state.nextToken
                state.nextToken += 1
                let orderKey = message.orderID.isEmpty ? "\(message.record.topic)/\(message.record.offset)" : message.orderID
                let startNow = state.ledger.receive(.init(tp: message.topicPartition, offset: message.record.offset, orderKey: orderKey), token: token)
                if let journal = configuration.journal, journal.isQuarantined(RecordCoordinates(message.topicPartition, message.record.offset)) {
                    let outcome = Outcome.recorded(poisonRecords(message))
                    if startNow {
                        finishedNow.append(Finished(token: token, message: message, outcome: outcome))
                    } else {
                        state.queued[token] = (message, outcome)
                    }
                } else if let prior = recorded[i] {
                    let outcome: Outcome
                    switch prior {
                    case .success(let records): outcome = .recorded(records)
                    case .failure(let failure): outcome = .failed(failure)
                    }
                    if startNow {
                        finishedNow.append(Finished(token: token, message: message, outcome: outcome))
                    } else {
                        state.queued[token] = (message, outcome)
                    }
                } else if startNow {
                    toStart.append((token, message))
                } else {
                    state.queued[token] = (message, nil)
                }
            }
        }
        for finished in finishedNow { complete(finished) }
        for (token, message) in toStart { start(token: token, message: message) }
    }

    /// A quarantined record: its copy on `<topic>.poison` and what the order needs to end.
    private func poisonRecords(_ message: InboundMessage) -> [ProducerRecord] {
        let reason = "crashed the process twice while in hand (\(configuration.group)); set aside so the partition goes on"
        logger.error("record quarantined", metadata: [
            "kafka.topic": "\(message.record.topic)", "kafka.partition": "\(message.record.partition)", "kafka.offset": "\(message.record.offset)",
            "order.id": "\(message.orderID)",
        ])
        metrics.add(WorkerMetrics.quarantined)
        let outcome = configuration.poisonOutcome?(message, reason)
            ?? [configuration.router.route(message, failure: StepFailure(PoisonRecord.errorClass, reason), now: UnixClock.nowMillis(), random: 0)]
        return [PoisonRecord.make(message.record, reason: reason)] + outcome
    }

    // MARK: Handling

    /// Starts a message now if a handler slot is free (at most `concurrency` run at once),
    /// else queues it, VIP messages ahead of standard ones.
    private func start(token: Int, message: InboundMessage) {
        let heartbeat = Heartbeat()
        let launchNow = state.withLock { state -> Bool in
            guard state.running.count < configuration.concurrency else {
                if message.priority == .vip { state.readyVIP.append((token, message)) } else { state.readyStandard.append((token, message)) }
                return false
            }
            state.running[token] = Running(message: message, task: nil, deadline: .now + .seconds(1_000_000), heartbeat: heartbeat)
            return true
        }
        if launchNow { launch(token: token, message: message, heartbeat: heartbeat) }
    }

    private func launch(token: Int, message: InboundMessage, heartbeat: Heartbeat) {
        let deadline = ContinuousClock.now + .milliseconds(Int64(configuration.policy.timeoutSeconds * 1000))
        let task = Task {
            let outcome: Outcome
            do {
                outcome = .work(try await handler.perform(message, heartbeat: heartbeat))
            } catch let failure as StepFailure {
                outcome = .failed(failure)
            } catch {
                outcome = .failed(StepFailure(StepFailure.transientClass, "\(error)"))
            }
            // Free the slot and hand it to the next ready message, VIP first.
            let (reason, next) = state.withLock { state -> (StepFailure?, (Int, InboundMessage, Heartbeat)?) in
                let reason = state.running.removeValue(forKey: token)?.cancelReason
                guard !state.stopping else { return (reason, nil) }
                let candidate: (Int, InboundMessage)? = !state.readyVIP.isEmpty ? state.readyVIP.removeFirst()
                    : !state.readyStandard.isEmpty ? state.readyStandard.removeFirst() : nil
                guard let (nextToken, nextMessage) = candidate else { return (reason, nil) }
                let beat = Heartbeat()
                state.running[nextToken] = Running(message: nextMessage, task: nil, deadline: .now + .seconds(1_000_000), heartbeat: beat)
                return (reason, (nextToken, nextMessage, beat))
            }
            if let (nextToken, nextMessage, beat) = next { launch(token: nextToken, message: nextMessage, heartbeat: beat) }
            if let reason {
                complete(Finished(token: token, message: message, outcome: .failed(reason)))
            } else if Task.isCancelled {
                // Handed back at shutdown: no outcome, not committed, redelivered later.
                state.withLock { $0.ledger.abandoned() }
            } else {
                complete(Finished(token: token, message: message, outcome: outcome))
            }
        }
        state.withLock { state in
            if state.running[token] != nil {
                state.running[token]!.task = task
                state.running[token]!.deadline = deadline
            }
        }
    }

    /// Queues a result for the flusher and starts the next message of the same order.
    private func complete(_ finished: Finished) {
        let orderKey = finished.message.orderID.isEmpty ? "\(finished.message.record.topic)/\(finished.message.record.offset)" : finished.message.orderID
        let next: (Int, InboundMessage, Outcome?)? = state.withLock { state in
            state.finished.append(finished)
            guard let token = state.ledger.finishHandling(orderKey: orderKey), let (message, outcome) = state.queued.removeValue(forKey: token) else { return nil }
            return (token, message, outcome)
        }
        flushSignal.signal()
        if let (token, message, outcome) = next {
            if let outcome {
                complete(Finished(token: token, message: message, outcome: outcome))
            } else {
                start(token: token, message: message)
            }
        }
    }

    /// Cancels attempts past their timeout or silent past the heartbeat interval.
    private static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    private func deadlineLoop() async {
        let heartbeatSeconds = configuration.policy.heartbeatSeconds
        let tick = Duration.milliseconds(Int64(max(1, min(50, configuration.policy.timeoutSeconds * 100, (heartbeatSeconds ?? 1) * 100))))
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            let now = ContinuousClock.now
            let overdue: [(Task<Void, Never>, Bool)] = state.withLock { state in
                var result: [(Task<Void, Never>, Bool)] = []
                for (token, running) in state.running where running.cancelReason == nil {
                    guard let task = running.task else { continue }
                    // When both have expired (this loop ran late), the one that expired first is the cause.
                    let heartbeatOverdue = heartbeatSeconds.map { running.heartbeat.secondsSinceLastBeat - $0 } ?? -1
                    let timeoutOverdue = now >= running.deadline ? Self.seconds(now - running.deadline) : -1
                    if heartbeatOverdue > 0, heartbeatOverdue >= timeoutOverdue, let heartbeatSeconds {
                        state.running[token]!.cancelReason = StepFailure(StepFailure.heartbeatTimeoutClass, "no heartbeat for heartbeat_seconds \(heartbeatSeconds)")
                        result.append((task, true))
                    } else if timeoutOverdue >= 0 {
                        state.running[token]!.cancelReason = StepFailure(StepFailure.timeoutClass, "no result within timeout_seconds \(configuration.policy.timeoutSeconds)")
                        result.append((task, false))
                    }
                }
                return result
            }
            for (task, heartbeat) in overdue {
                metrics.add(heartbeat ? WorkerMetrics.heartbeatMissed : WorkerMetrics.timedOut)
                task.cancel()
            }
        }
    }

    // MARK: Flushing

    private func flushLoop() async {
        while true {
            let (batch, stopping, idle) = state.withLock { state -> ([Finished], Bool, Bool) in
                let take = Array(state.finished.prefix(configuration.batchSize))
                state.finished.removeFirst(take.count)
                return (take, state.stopping, state.running.isEmpty && state.queued.isEmpty)
            }
            if batch.isEmpty {
                if stopping && idle { return }
                await flushSignal.wait(timeout: .milliseconds(50))
                continue
            }
            await flush(batch)
            commitSignal.signal()
        }
    }

    /// Commits in its own task, so publishing the next batch never waits for a commit's fsync.
    /// Commits stay in order: one at a time, each with the latest committable offsets.
    private func commitLoop(consumers: [any GroupConsumer]) async {
        while !Task.isCancelled {
            await commitSignal.wait(timeout: .milliseconds(200))
            await commit(consumers)
        }
    }

    private func flush(_ batch: [Finished]) async {
        var outgoing: [ProducerRecord] = []
        var toApply: [(message: InboundMessage, work: Handler.Work)] = []
        var failures: [(InboundMessage, StepFailure)] = []
        for finished in batch {
            switch finished.outcome {
            case .recorded(let records):
                outgoing += records
                metrics.add(WorkerMetrics.reemitted)
            case .work(let work): toApply.append((finished.message, work))
            case .failed(let failure): failures.append((finished.message, failure))
            }
        }
        if !toApply.isEmpty {
            // A store that refuses a transaction (disk full, locked) is not the messages'
            // fault: retry the same batch until it applies; nothing is committed meanwhile,
            // and at shutdown the batch is handed back for redelivery.
            var delay = Duration.milliseconds(50)
            while true {
                do {
                    let handler = self.handler
                    let items = toApply
                    let results = try await BlockingIO.run { try handler.apply(items) }
                    for (item, result) in zip(toApply, results) {
                        switch result {
                        case .success(let records):
                            outgoing += records
                            metrics.add(WorkerMetrics.succeeded)
                        case .failure(let failure):
                            failures.append((item.message, failure))
                        }
                    }
                    break
                } catch {
                    logger.error("store transaction failed; retrying the batch", metadata: ["error.message": "\(error)"])
                    if state.withLock({ $0.stopping }) {
                        state.withLock { state in for _ in batch { state.ledger.abandoned() } }
                        return
                    }
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
        }
        let now = UnixClock.nowMillis()
        for (message, failure) in failures {
            let routed = configuration.router.route(message, failure: failure, now: now, random: Double.random(in: 0..<1))
            metrics.add(routed.topic == configuration.router.deadLetterTopic ? WorkerMetrics.deadLettered : WorkerMetrics.retried)
            logger.debug("attempt failed", metadata: ["order.id": "\(message.orderID)", "error.type": "\(failure.errorClass)", "kafka.topic": "\(routed.topic)"])
            outgoing.append(routed)
        }
        // Publish until durable; a failed produce is retried, since committing without it would lose work.
        var delay = Duration.milliseconds(50)
        if outgoing.contains(where: { $0.topic.hasSuffix(PoisonRecord.suffix) }) { await PoisonRecord.ensureTopics(outgoing, on: broker) }
        while !outgoing.isEmpty {
            do {
                _ = try await broker.produce(outgoing)
                break
            } catch {
                logger.error("publishing results failed; retrying", metadata: ["error.message": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        state.withLock { state in
            for finished in batch { state.ledger.flushed(finished.message.topicPartition, finished.message.record.offset) }
        }
        capacitySignal.signal()
    }

    private func commit(_ consumers: [any GroupConsumer]) async {
        let committable = state.withLock { $0.ledger.takeCommittable() }
        guard !committable.isEmpty else { return }
        configuration.journal?.committed(committable)
        for consumer in consumers {
            let mine = await consumer.assignment()
            let offsets = committable.filter { mine.contains($0.key) }
            guard !offsets.isEmpty else { continue }
            do {
                try await consumer.commit(offsets)
            } catch {
                // The partition moved: its new owner re-handles from the last commit, idempotently.
                logger.warning("offset commit refused", metadata: ["error.message": "\(error)"])
            }
        }
    }
}
