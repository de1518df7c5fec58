import FulfillmentMetrics
import IOThreads
import Logging
import Messaging
import SagaDomain
import ServiceLifecycle
import StoreDatabase
import Synchronization

/// How a consumer of the saga consumes, handles and commits: one configuration per role.
public struct WorkerRuntimeConfiguration: Sendable {
    /// The consumer group (one per step; the priority lane uses `<group>.priority`).
    public var group: String
    /// The standard lane: the request topic and its retry tiers.
    public var standardTopics: [String]
    /// The VIP lane, drained first.
    public var priorityTopics: [String]
    public var policy: StepPolicy
    /// Where a failed attempt goes (retry tier or dead letter). `nil` for roles whose handler
    /// never reports a step failure (the tracker, the compensation driver): a failure there
    /// is a fault of the record, which is set aside on `<topic>.poison`.
    public var router: RetryRouter?
    /// Handlers running at once.
    public var concurrency = 64
    /// Records taken per poll, and the most results applied in one store transaction.
    public var batchSize = 500
    /// Messages taken and not yet committed at most; `nil`: four batches, or four times
    /// `concurrency` when that is more (see `WorkerRuntime.capacity`).
    public var maxInHand: Int?
    /// Flushers applying and publishing batches at once. Two overlap one batch's transaction
    /// with the previous batch's produce; one keeps batches applied in consumption order
    /// (the tracker's recorded offsets need that).
    public var flushers = 2
    /// While VIP traffic floods (the VIP lane keeps finding full batches), at least one
    /// standard batch in every `starvationGuard` VIP batches (`LaneTurns`).
    public var starvationGuard = 8
    /// After a poll that found fewer records than it asked for, how long the standard lane
    /// waits before taking what came meanwhile into the same batch (`nil`: it takes what the
    /// poll found). For a role whose batch costs far more than its records (the tracker's
    /// transaction), where a trickle would otherwise make a batch of each record.
    public var gatherFor: Duration?
    /// How long a graceful shutdown lets running handlers finish before handing them back.
    public var shutdownGrace: Duration = .seconds(5)
    /// Where the records in hand are noted, so that a record that crashes the process twice
    /// is set aside (`nil`: no quarantine, as in tests that host a runtime alone).
    public var journal: PoisonJournal?
    /// What a quarantined record becomes besides its copy on `<topic>.poison`; by default a
    /// dead letter (so the order is compensated, or parked when it is a compensation), or
    /// nothing for a role without a router.
    public var poisonOutcome: (@Sendable (InboundMessage, String) -> [ProducerRecord])?
    /// What the runtime records (nothing by default).
    public var metrics: RuntimeMetrics = .disabled
    /// Called once the consumers are made and joined their groups (what `/readyz` waits for).
    public var onReady: (@Sendable () -> Void)?
    /// Where partitions just granted start, for a handler that records what it consumed in
    /// its own store (`ConsumerConfiguration.startOffsets`); `nil`: the group's commits.
    public var startOffsets: (@Sendable (Set<TopicPartition>) async -> [TopicPartition: Int64])?
    /// Told the offsets each commit stored, after it did. Every record before them is
    /// finished: handled, or set aside as poison without reaching `apply`, which a handler
    /// that keeps its own offsets learns of here.
    public var onCommitted: (@Sendable ([TopicPartition: Int64]) async -> Void)?

    /// The consumer group of a runtime's VIP lane.
    public static func priorityGroup(_ group: String) -> String { group + ".priority" }

    public init(group: String, standardTopics: [String], priorityTopics: [String], policy: StepPolicy, router: RetryRouter?) {
        self.group = group
        self.standardTopics = standardTopics
        self.priorityTopics = priorityTopics
        self.policy = policy
        self.router = router
    }
}

/// The one consume -> handle -> publish -> commit loop, for every consumer of the saga: each
/// step, the compensation, the intake, the tracker and the compensation driver.
///
/// Messages are handled concurrently (up to `concurrency`), one at a time per order, or in
/// line for handlers that only compute. Finished results are gathered by flushers that
/// apply them in one store transaction, publish what they produce (next requests, retries,
/// dead letters) in one produce call, and only once that is durable commit offsets, each
/// partition up to its first unfinished message. A hanging handler therefore delays only the
/// commit of its partition, never other orders. The bookkeeping is `WorkerPipeline`.
///
/// Poison records: a record that crashed the process twice is set aside (`PoisonJournal`);
/// a batch whose store transaction keeps throwing is split, and a record that fails alone
/// while the rest of its batch goes through is set aside too (Spring's `DefaultErrorHandler`
/// does the same after its retries). When no record goes through alone, the fault is not the
/// records' (a store that is down) and the batch is retried until it applies.
public final class WorkerRuntime<Handler: StepHandler>: Service {
    typealias Pipeline = WorkerPipeline<Handler.Work>

    private struct State {
        var pipeline: Pipeline
        /// The tasks and heartbeats of running attempts, beside the pipeline that knows them.
        var tasks: [Int: Task<Void, Never>] = [:]
        var heartbeats: [Int: Heartbeat] = [:]
        var turns: LaneTurns
    }

    /// What became of one applied message.
    private enum Applied {
        case result(HandlerResult)
        /// Failed alone while the rest of its batch went through: set aside.
        case poison(reason: String)
    }

    public let handler: Handler
    public let configuration: WorkerRuntimeConfiguration
    private let broker: any MessageBroker
    private let logger: Logger
    private let state: Mutex<State>
    private let capacitySignal = Signal()
    /// The group members, once made; the revoke hook commits through them.
    private let members = Mutex<[any GroupConsumer]>([])
    private let flushSignal = Signal()
    /// A VIP outcome is finished: wakes the VIP lane's flusher, which sleeps through the
    /// standard lane's thousands of signals a second.
    private let vipFlushSignal = Signal()
    private let commitSignal = Signal()
    /// The standard lane had its turn (`LaneTurns`).
    private let standardTurnSignal = Signal()
    /// Handed to in-line handlers, which take no heartbeats.
    private let unusedHeartbeat = Heartbeat()

    /// How long finished VIP outcomes wait for the VIP work still being handled beside them
    /// (`WorkerPipeline.vipFlushDue`).
    static var vipLinger: Duration { .milliseconds(5) }

    /// Attempts of a whole batch's transaction before its records are tried one by one.
    static var batchAttempts: Int { 3 }

    /// Messages taken and not yet committed at most: enough for several batches to be in
    /// different stages (handling, applying, publishing) at once.
    var capacity: Int { configuration.maxInHand ?? max(configuration.concurrency * 4, configuration.batchSize * 4) }

    /// Messages in hand now, and how many of them the VIP lane holds (for tests).
    var inHand: (taken: Int, vip: Int) { state.withLock { ($0.pipeline.taken, $0.pipeline.takenVIP) } }

    public init(broker: any MessageBroker, handler: Handler, configuration: WorkerRuntimeConfiguration, logger: Logger) {
        self.broker = broker
        self.handler = handler
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "saga.worker"] = "\(handler.name)"
        self.logger = logger
        state = Mutex(State(pipeline: Pipeline(
            concurrency: handler.performsInline ? Int.max : configuration.concurrency,
            timeoutSeconds: configuration.policy.timeoutSeconds, heartbeatSeconds: configuration.policy.heartbeatSeconds,
            oneMessagePerOrder: !handler.performsInline), turns: LaneTurns(guardEvery: configuration.starvationGuard)))
    }

    public func run() async throws {
        var consumerConfiguration = ConsumerConfiguration()
        consumerConfiguration.clientID = configuration.group
        if let startOffsets = configuration.startOffsets {
            // Where the handler says a partition starts is committed too (`PipelineLedger.starts`).
            consumerConfiguration.startOffsets = { [weak self] partitions in
                let offsets = await startOffsets(partitions)
                self?.state.withLock { $0.pipeline.starts(offsets) }
                return offsets
            }
        }
        // Before partitions move to another member, commit what is finished, so the new owner
        // does not redo it (it would be harmless, being idempotent, but wasted).
        consumerConfiguration.onRevoke = { [weak self] _ in
            guard let self else { return }
            await self.commit(self.members.withLock { $0 })
        }
        let standard = try await broker.makeConsumer(group: configuration.group, topics: configuration.standardTopics, configuration: consumerConfiguration)
        let priority = configuration.priorityTopics.isEmpty
            ? nil
            : try await broker.makeConsumer(group: WorkerRuntimeConfiguration.priorityGroup(configuration.group), topics: configuration.priorityTopics, configuration: consumerConfiguration)
        let consumers = [standard] + (priority.map { [$0] } ?? [])
        members.withLock { $0 = consumers }
        configuration.onReady?()

        // The VIP lane's tasks are unstructured: a child of a task group runs at its parent's
        // priority whatever it was given, and the VIP lane must run ahead of the standard one.
        // The VIP lane's own flusher means a VIP result never waits for a flusher busy with
        // a standard batch.
        let flushers = (0..<max(1, configuration.flushers)).map { _ in Task(priority: .medium) { await self.flushLoop(lane: .standard) } }
            + (priority != nil && !handler.performsInline ? [Task(priority: .high) { await self.flushLoop(lane: .vip) }] : [])
        let committer = Task { await self.commitLoop(consumers: consumers) }
        let deadlines = handler.performsInline ? nil : Task { await self.deadlineLoop() }
        // Each lane polls in a task of its own, the VIP lane's at a higher priority: a VIP
        // record is taken while the standard lane is busy taking a batch of a thousand. When
        // one lane stops (shutdown, or an error that stops the worker), the other stops too.
        let lanes = [Task(priority: .medium) { await self.keepPolling { try await self.pollStandardLane(standard, priority: priority) } }]
            + (priority.map { priority in [Task(priority: .high) { await self.keepPolling { try await self.pollVIPLane(priority) } }] } ?? [])
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for lane in lanes { group.addTask { await lane.value } }
                await group.next()
                for lane in lanes { lane.cancel() }
            }
        } onCancel: {
            for lane in lanes { lane.cancel() }
        }
        // Graceful shutdown: no new work; let running handlers finish, then hand back the rest
        // (messages not started are simply not committed: they are redelivered after restart).
        _ = state.withLock { $0.pipeline.stop() }
        let graceEnd = ContinuousClock.now + configuration.shutdownGrace
        while state.withLock({ $0.pipeline.runningCount > 0 }), ContinuousClock.now < graceEnd {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let abandoned = state.withLock { Array($0.tasks.values) }
        for task in abandoned { task.cancel() }
        for task in abandoned { await task.value }
        signalFlushers((standard: true, vip: true))
        deadlines?.cancel()
        for flusher in flushers { await flusher.value }
        committer.cancel()
        await committer.value
        await commit(consumers)
        for consumer in consumers { await consumer.close() }
        configuration.journal?.close()
        logger.debug("worker stopped")
    }

    // MARK: Polling

    /// Runs a lane's poll loop. A broker briefly away (retriable errors) is waited out;
    /// anything else stops the worker.
    private func keepPolling(_ loop: () async throws -> Void) async {
        while true {
            do {
                try await loop()
                return
            } catch let error as BrokerError where error.isRetriable && !error.isFatal {
                logger.warning("the broker is not answering; polling again shortly", metadata: ["kafka.group": "\(configuration.group)", "error.message": "\(error)"])
                try? await Task.sleep(for: .milliseconds(500))
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
            } catch {
                if Task.isCancelled { return }
                logger.error("worker stopped by an error", metadata: ["error.message": "\(error)"])
                return
            }
        }
    }

    /// The standard lane: request and retry topics, within the standard budget. After a
    /// crash it is the one lane that polls, one record at a time from both (`handleAlone`).
    private func pollStandardLane(_ standard: any GroupConsumer, priority: (any GroupConsumer)?) async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let journal = configuration.journal, journal.isCautious {
                try await handleAlone(standard: standard, priority: priority, journal: journal)
                continue
            }
            let room = state.withLock { capacity - ($0.pipeline.taken - $0.pipeline.takenVIP) }
            guard room > 0 else {
                endStandardTurn()
                await capacitySignal.wait(timeout: .milliseconds(100))
                continue
            }
            let asked = min(room, configuration.batchSize)
            var records = try await standard.poll(maxRecords: asked, maxWait: .milliseconds(20))
            if let gather = configuration.gatherFor, !records.isEmpty, records.count < asked {
                // One look after the pause, not a poll woken by each record meanwhile.
                try? await Task.sleep(for: gather)
                records += try await standard.poll(maxRecords: asked - records.count, maxWait: .zero)
            }
            if !records.isEmpty {
                configuration.journal?.took(records)
                await accept(records, lane: .standard)
            }
            endStandardTurn()
        }
    }

    private func endStandardTurn() {
        state.withLock { $0.turns.standardHadTurn() }
        standardTurnSignal.signal()
    }

    /// The VIP lane: the priority topics, within a budget of its own, so a pipeline full of
    /// standard work never keeps a VIP record from being taken. It owes the standard lane a
    /// turn only while it keeps finding full batches (`LaneTurns`).
    private func pollVIPLane(_ priority: any GroupConsumer) async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // After a crash, the standard lane takes records one at a time from both lanes.
            if configuration.journal?.isCautious == true {
                try? await Task.sleep(for: .milliseconds(5))
                continue
            }
            let (room, mayPoll) = state.withLock { (capacity - $0.pipeline.takenVIP, $0.turns.vipMayPoll) }
            guard mayPoll else {
                await standardTurnSignal.wait(timeout: .milliseconds(20))
                continue
            }
            guard room > 0 else {
                await capacitySignal.wait(timeout: .milliseconds(2))
                continue
            }
            let asked = min(room, configuration.batchSize)
            let records = try await priority.poll(maxRecords: asked, maxWait: .milliseconds(20))
            state.withLock { $0.turns.vipTook(records.count, asked: asked) }
            if !records.isEmpty {
                configuration.journal?.took(records)
                await accept(records, lane: .vip)
            }
        }
    }

    /// After a crash: one record at a time, and only while no other consumer of the process
    /// has one in hand, so a second crash names exactly the record that caused it.
    private func handleAlone(standard: any GroupConsumer, priority: (any GroupConsumer)?, journal: PoisonJournal) async throws {
        while state.withLock({ $0.pipeline.taken > 0 }) { await capacitySignal.wait(timeout: .milliseconds(5)) }
        await journal.takeTurn()
        // The turn is held only while a record is; polls do not wait in it.
        var records = try await priority?.poll(maxRecords: 1, maxWait: .zero) ?? []
        let lane: Priority = records.isEmpty ? .standard : .vip
        if records.isEmpty { records = try await standard.poll(maxRecords: 1, maxWait: .zero) }
        guard let record = records.first else {
            journal.endTurn()
            try? await Task.sleep(for: .milliseconds(5))
            return
        }
        journal.tookAlone(record)
        await accept(records, lane: lane)
        while state.withLock({ $0.pipeline.taken > 0 }) { await capacitySignal.wait(timeout: .milliseconds(2)) }
        journal.handledAlone(record)
        journal.endTurn()
    }

    /// `lane`: the consumer the records came from (`.vip`: the priority topics').
    private func accept(_ records: [ConsumerRecord], lane: Priority) async {
        let messages = records.map { InboundMessage(record: $0, lane: lane) }
        let recorded: [Int: HandlerResult]
        do {
            let handler = self.handler
            recorded = try await onStoreThreads { try handler.recordedOutcomes(for: messages) }
        } catch {
            logger.warning("could not read recorded outcomes; handling the batch afresh", metadata: ["error.message": "\(error)"])
            recorded = [:]
        }
        let duplicates = recorded.values.filter { if case .success = $0 { true } else { false } }.count
        if duplicates > 0 { configuration.metrics.step?.duplicate(duplicates) }
        let journal = configuration.journal
        let known: [Pipeline.Outcome?] = messages.enumerated().map { i, message in
            switch journal?.verdict(message.record, idempotencyKey: message.idempotencyKey) ?? .handle {
            case .handle: break
            case .setAside:
                return .recorded(poisonRecords(message, reason: "crashed the process twice while in hand (\(configuration.group)); set aside so the partition goes on"))
            case .copyOfSetAside:
                logger.warning("record not handled: a copy of work set aside as poison, whose outcome left with the original", metadata: [
                    "kafka.topic": "\(message.record.topic)", "kafka.partition": "\(message.record.partition)", "kafka.offset": "\(message.record.offset)",
                    "order.id": "\(message.orderID)", "saga.idempotency_key": "\(message.idempotencyKey)",
                ])
                return .recorded([])
            }
            switch recorded[i] {
            case .success(let records): return .recorded(records)
            case .failure(let failure): return .failed(failure)
            case nil: return nil
            }
        }
        if handler.performsInline {
            // In consumption order, each message finished before the next is received, so
            // none ever waits behind its order and outcomes leave in the order they came.
            for (message, known) in zip(messages, known) {
                var launches = state.withLock { $0.pipeline.receive(message, known: known, now: .now) }
                while !launches.isEmpty {
                    let launch = launches.removeFirst()
                    let outcome = await perform(launch.message, heartbeat: unusedHeartbeat)
                    launches += state.withLock { $0.pipeline.attemptEnded(launch.token, outcome: outcome, now: .now) }
                }
            }
            flushSignal.signal()
            return
        }
        let now = ContinuousClock.now
        let (launches, wake) = state.withLock { state in
            (zip(messages, known).flatMap { state.pipeline.receive($0, known: $1, now: now) }, state.pipeline.flushersToWake)
        }
        signalFlushers(wake)
        for launch in launches { self.launch(launch) }
    }

    /// A set-aside record: its copy on `<topic>.poison` and what the order needs to end.
    private func poisonRecords(_ message: InboundMessage, reason: String) -> [ProducerRecord] {
        logger.error("record quarantined", metadata: [
            "kafka.topic": "\(message.record.topic)", "kafka.partition": "\(message.record.partition)", "kafka.offset": "\(message.record.offset)",
            "order.id": "\(message.orderID)", "error.message": "\(reason)",
        ])
        configuration.metrics.deadLetters[PoisonRecord.topic(for: message.record.topic)].increment()
        let outcome = configuration.poisonOutcome?(message, reason)
            ?? configuration.router.map { [$0.route(message, failure: StepFailure(PoisonRecord.errorClass, reason), now: UnixClock.nowMillis(), random: 0)] }
            ?? []
        for record in outcome where record.topic == configuration.router?.deadLetterTopic { configuration.metrics.deadLetters[record.topic].increment() }
        return [PoisonRecord.make(message.record, reason: reason)] + outcome
    }

    // MARK: Handling

    private func perform(_ message: InboundMessage, heartbeat: Heartbeat) async -> Pipeline.Outcome {
        do {
            return .work(try await handler.perform(message, heartbeat: heartbeat))
        } catch let failure as StepFailure {
            return .failed(failure)
        } catch {
            return .failed(StepFailure(StepFailure.transientClass, "\(error)"))
        }
    }

    private func launch(_ launch: Pipeline.Launch) {
        let heartbeat = Heartbeat()
        // VIP attempts run ahead of standard ones on the cooperative pool, where hundreds of
        // standard attempts may be queued. Both are explicit: an attempt launched from a VIP
        // attempt's end would otherwise inherit its priority.
        let task = Task(priority: launch.message.lane == .vip ? .high : .medium) {
            let started = ContinuousClock.now
            let outcome = await perform(launch.message, heartbeat: heartbeat)
            configuration.metrics.step?.attemptTook(.now - started)
            // Handed back at shutdown when cancelled without an overdue mark (that mark wins).
            let handedBack = Task.isCancelled
            let (next, wake) = state.withLock { state in
                state.tasks[launch.token] = nil
                state.heartbeats[launch.token] = nil
                return (state.pipeline.attemptEnded(launch.token, outcome: outcome, handedBack: handedBack, now: .now), state.pipeline.flushersToWake)
            }
            signalFlushers(wake)
            for n in next { self.launch(n) }
        }
        state.withLock { state in
            // The attempt may have ended already; then there is nothing to keep.
            if state.pipeline.isRunning(launch.token) {
                state.tasks[launch.token] = task
                state.heartbeats[launch.token] = heartbeat
            }
        }
    }

    /// Cancels attempts past their timeout or silent past the heartbeat interval.
    private func deadlineLoop() async {
        let policy = configuration.policy
        let tick = Duration.milliseconds(Int64(max(1, min(50, policy.timeoutSeconds * 100, (policy.heartbeatSeconds ?? 1) * 100))))
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            let overdue: [(Task<Void, Never>?, StepFailure)] = state.withLock { state in
                let heartbeats = state.heartbeats
                return state.pipeline.markOverdue(now: .now) { heartbeats[$0]?.secondsSinceLastBeat }
                    .map { (state.tasks[$0.token], $0.failure) }
            }
            for (task, _) in overdue { task?.cancel() }
        }
    }

    // MARK: Flushing

    /// `lane`: `.vip` for the VIP lane's own flusher (`WorkerPipeline.takeFinished`).
    private func flushLoop(lane: Priority) async {
        let signal = lane == .vip ? vipFlushSignal : flushSignal
        while true {
            if lane == .vip, let due = state.withLock({ $0.pipeline.vipFlushDue(linger: Self.vipLinger) }), case let now = ContinuousClock.now, due > now {
                await signal.wait(timeout: due - now)
                continue
            }
            let (batch, stopping, idle) = state.withLock { state in
                (state.pipeline.takeFinished(max: configuration.batchSize, lane: lane), state.pipeline.isStopping, state.pipeline.isIdle)
            }
            if batch.isEmpty {
                if stopping && idle { return }
                await signal.wait(timeout: .milliseconds(50))
                continue
            }
            await flush(batch)
            commitSignal.signal()
        }
    }

    /// Wakes only the flushers with something to take (`WorkerPipeline.flushersToWake`): a
    /// trickle of VIP results used to wake the standard flushers too, each going back to a
    /// timed wait, at every hop.
    private func signalFlushers(_ wake: (standard: Bool, vip: Bool)) {
        if wake.standard { flushSignal.signal() }
        if wake.vip { vipFlushSignal.signal() }
    }

    /// Commits in its own task, so publishing the next batch never waits for a commit's fsync.
    /// Commits stay in order: one at a time, each with the latest committable offsets, and at
    /// most one per `commitSpacing`: a trickle of lone records would otherwise make a commit,
    /// and a sync of the offsets file, of each. A commit only moves where a restart after a
    /// crash resumes; what it covers is applied and published already, and handled again
    /// idempotently when redelivered.
    private func commitLoop(consumers: [any GroupConsumer]) async {
        while !Task.isCancelled {
            await commitSignal.wait(timeout: .milliseconds(200))
            await commit(consumers)
            try? await Task.sleep(for: Self.commitSpacing)
        }
    }

    static var commitSpacing: Duration { .milliseconds(50) }

    private func flush(_ batch: [Pipeline.Finished]) async {
        var outgoing: [ProducerRecord] = []
        var toApply: [(message: InboundMessage, work: Handler.Work)] = []
        var failures: [(message: InboundMessage, failure: StepFailure, attempted: Bool)] = []
        for finished in batch {
            switch finished.outcome {
            case .recorded(let records): outgoing += records
            case .work(let work): toApply.append((finished.message, work))
            case .failed(let failure): failures.append((finished.message, failure, finished.attempted))
            }
        }
        if !toApply.isEmpty {
            guard let applied = await applyUntilDone(toApply) else {
                state.withLock { $0.pipeline.handBack(batch) }
                return
            }
            for (item, result) in zip(toApply, applied) {
                switch result {
                case .result(.success(let records)):
                    outgoing += records
                    configuration.metrics.step?.attempt(.ok)
                case .result(.failure(let failure)):
                    failures.append((item.message, failure, true))
                case .poison(let reason):
                    outgoing += poisonRecords(item.message, reason: reason)
                }
            }
        }
        let now = UnixClock.nowMillis()
        for (message, failure, attempted) in failures {
            guard let router = configuration.router else {
                outgoing += poisonRecords(message, reason: "its handler reported \(failure) and \(configuration.group) has no retry policy")
                continue
            }
            let routed = router.route(message, failure: failure, now: now, random: Double.random(in: 0..<1))
            if attempted { configuration.metrics.step?.attempt(Self.result(of: failure, policy: router.policy)) }
            if routed.topic == router.deadLetterTopic {
                configuration.metrics.deadLetters[routed.topic].increment()
            } else {
                configuration.metrics.step?.retried(tier: message.priority.rawValue)
            }
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
        state.withLock { $0.pipeline.flushed(batch) }
        capacitySignal.signal()
    }

    /// How a failed attempt counts in `fulfillment_step_attempts_total`.
    static func result(of failure: StepFailure, policy: StepPolicy) -> StepMetrics.Result {
        switch failure.errorClass {
        case StepFailure.timeoutClass: .timeout
        case StepFailure.heartbeatTimeoutClass: .heartbeatMissed
        default: policy.rule(for: failure.errorClass) == nil ? .nonRetryable : .retryable
        }
    }

    /// Applies finished work in one store transaction, retried in place while it throws
    /// (nothing is committed meanwhile). When it keeps throwing, the messages are applied one
    /// by one to find the ones at fault. `nil`: shutdown came first; the batch is handed back.
    private func applyUntilDone(_ items: [(message: InboundMessage, work: Handler.Work)]) async -> [Applied]? {
        let handler = self.handler
        var delay = Duration.milliseconds(50)
        var attempts = 0
        while true {
            do {
                return try await onStoreThreads { try handler.apply(items) }.map { .result($0) }
            } catch {
                attempts += 1
                logger.error("store transaction failed; retrying the batch", metadata: ["error.message": "\(error)", "saga.batch_size": "\(items.count)"])
                if state.withLock({ $0.pipeline.isStopping }) { return nil }
                if attempts >= Self.batchAttempts, items.count > 1 {
                    if let isolated = await applyOneByOne(items) { return isolated }
                    if state.withLock({ $0.pipeline.isStopping }) { return nil }
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                if attempts >= Self.batchAttempts, items.count == 1, let settled = await settleLoneMessage(items[0], failing: error) {
                    return [settled]
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Tries each message alone (a few times each), keeping each partition's order: a
    /// partition stops at its first message that fails alone, and its later messages are
    /// applied only after that one (the tracker's recorded offsets, and an order's events,
    /// rely on that order; a tracker that recorded a later offset first once skipped the
    /// failed record on its retry as already recorded, and lost it).
    ///
    /// `nil` when nothing goes through alone and an empty transaction fails too: the store is
    /// failing, not the messages, and the batch is retried whole. Otherwise each stopped
    /// partition goes on from its failed message, which is tried again (the store may have
    /// come back meanwhile) and set aside only if it fails again.
    private func applyOneByOne(_ items: [(message: InboundMessage, work: Handler.Work)]) async -> [Applied]? {
        var applied: [Applied?] = Array(repeating: nil, count: items.count)
        var stopped: Set<TopicPartition> = []
        for (i, item) in items.enumerated() where !stopped.contains(item.message.topicPartition) {
            if case .success(let result) = await applyAlone(item) { applied[i] = .result(result) } else { stopped.insert(item.message.topicPartition) }
        }
        if applied.allSatisfy({ $0 == nil }) {
            let handler = self.handler
            guard (try? await onStoreThreads { try handler.apply([]) }) != nil else {
                logger.error("no message of the batch applies alone either: retrying the batch (the store is failing, not the messages)")
                return nil
            }
        }
        for i in items.indices where applied[i] == nil {
            var waited = false
            while applied[i] == nil {
                switch await applyAlone(items[i]) {
                case .success(let result): applied[i] = .result(result)
                case .failure(let error as StoreError) where error.code.isRetriable:
                    // A full disk, an I/O error, a server away: the store's trouble, not the
                    // message's (the others got through only while there was room). Wait for it.
                    if !waited {
                        logger.error("the store is failing, not the message: retrying it until the store recovers", metadata: [
                            "order.id": "\(items[i].message.orderID)", "error.message": "\(error)",
                        ])
                        waited = true
                    }
                    if state.withLock({ $0.pipeline.isStopping }) { return nil }
                    try? await Task.sleep(for: .seconds(1))
                case .failure(let error):
                    applied[i] = .poison(reason: "its store transaction kept failing alone while the store committed without it (\(configuration.group)): \(error)")
                }
            }
        }
        return applied.map { $0! }
    }

    /// A message alone in its batch whose transaction keeps failing: set aside when the fault
    /// is its own, i.e. the error is not one of the store's (a full disk, I/O, a server away)
    /// and an empty transaction commits; `nil` (retry) when the store is failing. Without
    /// this, a poison message with no other message beside it (the end of a backlog, a quiet
    /// topic) would be retried forever, holding its partition.
    private func settleLoneMessage(_ item: (message: InboundMessage, work: Handler.Work), failing error: any Error) async -> Applied? {
        if let error = error as? StoreError, error.code.isRetriable { return nil }
        let handler = self.handler
        do {
            _ = try await onStoreThreads { try handler.apply([]) }
        } catch {
            return nil
        }
        // Once more alone: the store may have come back meanwhile.
        switch await applyAlone(item) {
        case .success(let result): return .result(result)
        case .failure(let error as StoreError) where error.code.isRetriable: return nil
        case .failure(let error):
            return .poison(reason: "its store transaction kept failing alone while the store committed without it (\(configuration.group)): \(error)")
        }
    }

    /// One message's work applied alone, a few attempts; the last error if every attempt threw.
    private func applyAlone(_ item: (message: InboundMessage, work: Handler.Work)) async -> Result<HandlerResult, any Error> {
        let handler = self.handler
        var lastError: any Error = CancellationError()
        for attempt in 0..<Self.batchAttempts {
            do {
                return .success(try await onStoreThreads { try handler.apply([item]) }[0])
            } catch {
                lastError = error
                logger.warning("a message's store transaction failed alone", metadata: ["order.id": "\(item.message.orderID)", "error.message": "\(error)"])
                try? await Task.sleep(for: .milliseconds(20 << attempt))
            }
        }
        return .failure(lastError)
    }

    private func commit(_ consumers: [any GroupConsumer]) async {
        let committable = state.withLock { $0.pipeline.takeCommittable() }
        guard !committable.isEmpty else { return }
        configuration.journal?.committed(committable)
        for consumer in consumers {
            let mine = await consumer.assignment()
            let offsets = committable.filter { mine.contains($0.key) }
            guard !offsets.isEmpty else { continue }
            do {
                try await consumer.commit(offsets)
                await configuration.onCommitted?(offsets)
            } catch let error as BrokerError where error.code == .notPartitionOwner {
                // The partition moved: its new owner re-handles from the last commit, idempotently.
                logger.warning("offset commit refused", metadata: ["kafka.group": "\(configuration.group)", "error.message": "\(error)"])
            } catch {
                // Offered again at the next commit, even if the partition goes quiet meanwhile.
                state.withLock { $0.pipeline.commitFailed(offsets) }
                logger.warning("offset commit failed; it is retried", metadata: ["kafka.group": "\(configuration.group)", "error.message": "\(error)"])
            }
        }
    }

    /// Runs the handler's store work on the blocking threads of its priority: the one place
    /// that chooses them.
    private func onStoreThreads<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await BlockingIO.run(handler.storePriority, body)
    }
}
