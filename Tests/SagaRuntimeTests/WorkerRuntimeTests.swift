import Broker
import Foundation
import IOThreads
import Logging
import Messaging
import SagaDomain
@testable import SagaRuntime
import StoreDatabase
import Synchronization
import TestSupport
import Testing

/// The one consume -> handle -> publish -> commit loop on the real embedded broker, with
/// handlers whose store transaction fails on purpose.
@Suite struct WorkerRuntimeTests {
    /// A store whose transaction throws for some orders, or for everything a number of times,
    /// or that fills up: past `room` records it refuses as a full disk does, for `fullFor`
    /// from its first refusal (then the operator has freed space).
    final class FailingStore: Sendable {
        let poisonOrders: Set<String>
        private let failuresLeft: Mutex<Int>
        /// An order whose transactions fail this many times, then go through.
        private let flaky: Mutex<(order: String, times: Int)?>
        private let appliedBatches = Mutex<[[ConsumerRecord]]>([])
        private let disk: Mutex<(room: Int, fullFor: Duration, freedAt: ContinuousClock.Instant?)>

        init(poisonOrders: Set<String> = [], failEverything times: Int = 0, room: Int = .max, fullFor: Duration = .zero, flaky: (order: String, times: Int)? = nil) {
            self.poisonOrders = poisonOrders
            failuresLeft = Mutex(times)
            self.flaky = Mutex(flaky)
            disk = Mutex((room, fullFor, nil))
        }

        struct Refused: Error {}

        func apply(_ records: [ConsumerRecord]) throws {
            try failuresLeft.withLock { left in
                if left > 0 {
                    left -= 1
                    throw Refused()
                }
            }
            try disk.withLock { disk in
                let now = ContinuousClock.now
                if let freedAt = disk.freedAt, now >= freedAt { disk.room = .max }
                guard records.count > disk.room else {
                    disk.room -= records.count
                    return
                }
                if disk.freedAt == nil { disk.freedAt = now + disk.fullFor }
                throw StoreError(.storageFull, "database or disk is full")
            }
            if records.contains(where: { poisonOrders.contains($0.keyString ?? "") }) { throw Refused() }
            try flaky.withLock { flaky in
                guard let current = flaky, current.times > 0, records.contains(where: { $0.keyString == current.order }) else { return }
                flaky!.times -= 1
                throw Refused()
            }
            appliedBatches.withLock { $0.append(records) }
            #if os(Linux)
            let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            appliedAtNiceness.withLock { $0.insert(nice) }
            #endif
        }

        var applied: [[ConsumerRecord]] { appliedBatches.withLock { $0 } }
        /// The nice values of the threads that applied batches.
        let appliedAtNiceness = Mutex<Set<Int32>>([])
    }

    struct Handler: StepHandler {
        let store: FailingStore
        let inline: Bool
        var priority = BlockingIO.Priority.normal
        var name: String { "runtime-test" }
        var performsInline: Bool { inline }
        var storePriority: BlockingIO.Priority { priority }

        func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> ConsumerRecord { message.record }

        func apply(_ batch: [(message: InboundMessage, work: ConsumerRecord)]) throws -> [HandlerResult] {
            try store.apply(batch.map(\.work))
            return batch.map { .success([ProducerRecord(topic: "done", key: $0.message.orderID, value: "{}")]) }
        }
    }

    func run(
        _ handler: Handler, orders: [String], partitions: Int = 1, flushers: Int = 2, batchSize: Int = 50,
        commits: CommitsSeen? = nil,
        until done: @escaping @Sendable (EmbeddedBroker) async throws -> Bool
    ) async throws -> EmbeddedBroker {
        let directory = TemporaryDirectory("runtime")
        let (broker, logger) = try quietBroker(directory.path)
        for (name, count) in [("in", partitions), ("done", 1), ("in.dlt", 1)] { try await broker.createTopic(TopicSpec(name: name, partitions: count)) }
        _ = try await broker.produce(orders.enumerated().map { i, order in
            ProducerRecord(topic: "in", partition: i % partitions, key: Array(order.utf8), value: Array("{}".utf8))
        })
        let policy = StepPolicy(timeoutSeconds: 5)
        var configuration = WorkerRuntimeConfiguration(
            group: "runtime-test", standardTopics: ["in"], priorityTopics: [], policy: policy,
            router: RetryRouter(policy: policy, retryTopic: { "in.retry.\($0)" }, deadLetterTopic: "in.dlt"))
        configuration.batchSize = batchSize
        configuration.flushers = flushers
        if let commits { configuration.onCommitted = { offsets in commits.note(offsets) } }
        let runtime = WorkerRuntime(broker: broker, handler: handler, configuration: configuration, logger: logger)
        let task = Task { try await runtime.run() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await !done(broker) {
            if ContinuousClock.now > deadline { Issue.record("the runtime did not finish in 60 s"); break }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Wait for the commits of what was published.
        while try await broker.lag(group: "runtime-test").contains(where: { $0.lag > 0 }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        task.cancel()
        _ = try? await task.value
        withExtendedLifetime(directory) {}
        return broker
    }

    /// A handler that keeps every message for a minute: the runtime goes on taking until its
    /// budget of messages in hand is full.
    struct Parked: StepHandler {
        var name: String { "runtime-test" }
        func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Int {
            try await Task.sleep(for: .seconds(60))
            return 0
        }
        func apply(_ batch: [(message: InboundMessage, work: Int)]) throws -> [HandlerResult] { batch.map { _ in .success([]) } }
    }

    /// Runs `runtime` (whose handler parks every message) until it has taken its whole budget,
    /// waits a little longer for anything taken past it, and says what it holds then.
    func inHandOnceFull(_ runtime: WorkerRuntime<Parked>) async throws -> (taken: Int, vip: Int) {
        let task = Task { try await runtime.run() }
        let deadline = ContinuousClock.now + .seconds(20)
        while runtime.inHand.taken < runtime.capacity, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(500))
        let inHand = runtime.inHand
        task.cancel()
        _ = try? await task.value
        return inHand
    }

    /// Found with a heap profile: orders `produce` puts on `orders.priority` carry no
    /// `priority` header, so the intake counted them as standard, and the VIP lane, whose
    /// budget counts only VIP messages, kept taking them: a million queued orders' VIP share
    /// was read into memory at once (100,000 of them: 370 MiB instead of 190).
    @Test func recordsTakenFromThePriorityTopicsStayWithinTheVIPBudgetWhateverTheirHeaders() async throws {
        let directory = TemporaryDirectory("runtime-lanes")
        let (broker, logger) = try quietBroker(directory.path)
        for name in ["in", "in.priority"] { try await broker.createTopic(TopicSpec(name: name, partitions: 1)) }
        let queued = 1_000
        _ = try await broker.produce((0..<queued).map { ProducerRecord(topic: "in.priority", key: Array("o-\($0)".utf8), value: Array("{}".utf8)) })
        var configuration = WorkerRuntimeConfiguration(group: "runtime-test", standardTopics: ["in"], priorityTopics: ["in.priority"], policy: StepPolicy(timeoutSeconds: 120), router: nil)
        configuration.batchSize = 20
        configuration.concurrency = 10
        configuration.shutdownGrace = .milliseconds(10)
        let runtime = WorkerRuntime(broker: broker, handler: Parked(), configuration: configuration, logger: logger)
        let inHand = try await inHandOnceFull(runtime)
        #expect(inHand.taken == runtime.capacity, "the VIP lane fills its budget (\(inHand.taken) of \(runtime.capacity) taken)")
        #expect(inHand.vip == inHand.taken, "every record taken from a priority topic counts against the VIP budget")
        #expect(runtime.capacity < queued)
        withExtendedLifetime(directory) {}
    }

    /// `maxInHand` replaces the default budget (four batches): the tracker records 20,000-record
    /// batches and holds two, not four.
    @Test func aRuntimeTakesNoMoreThanItsMaxInHand() async throws {
        let directory = TemporaryDirectory("runtime-in-hand")
        let (broker, logger) = try quietBroker(directory.path)
        try await broker.createTopic(TopicSpec(name: "in", partitions: 2))
        _ = try await broker.produce((0..<500).map { ProducerRecord(topic: "in", key: Array("o-\($0)".utf8), value: Array("{}".utf8)) })
        var configuration = WorkerRuntimeConfiguration(group: "runtime-test", standardTopics: ["in"], priorityTopics: [], policy: StepPolicy(timeoutSeconds: 120), router: nil)
        configuration.batchSize = 20
        configuration.concurrency = 100
        configuration.maxInHand = 30
        configuration.shutdownGrace = .milliseconds(10)
        let runtime = WorkerRuntime(broker: broker, handler: Parked(), configuration: configuration, logger: logger)
        #expect(runtime.capacity == 30)
        let taken = try await inHandOnceFull(runtime).taken
        #expect(taken == 30, "\(taken) taken; without maxInHand the budget would be 400 (4 × concurrency)")
        withExtendedLifetime(directory) {}
    }

    /// Each lane polls in a task of its own. With one poll loop for both, a VIP record waited
    /// while the loop was busy taking a standard batch (reading its recorded outcomes, which
    /// waits on the store): here that read never returns, and the VIP record must still be
    /// taken, handled and published.
    @Test func aVIPRecordGoesThroughWhileTheStandardLaneIsStuckTakingABatch() async throws {
        final class Gate: Sendable {
            let open = Atomic(false)
            let standardStuck = Atomic(false)
            var isStuck: Bool { standardStuck.load(ordering: .relaxed) }
        }
        struct StuckStandard: StepHandler {
            let gate: Gate
            var name: String { "runtime-test" }
            func recordedOutcomes(for messages: [InboundMessage]) throws -> [Int: HandlerResult] {
                guard messages.contains(where: { $0.lane == .standard }) else { return [:] }
                gate.standardStuck.store(true, ordering: .relaxed)
                while !gate.open.load(ordering: .relaxed) { usleep(1_000) }
                return [:]
            }
            func perform(_ message: InboundMessage, heartbeat: Heartbeat) async throws -> Int { 0 }
            func apply(_ batch: [(message: InboundMessage, work: Int)]) throws -> [HandlerResult] {
                batch.map { .success([ProducerRecord(topic: "done", key: $0.message.orderID, value: "{}")]) }
            }
        }
        let directory = TemporaryDirectory("runtime-vip-lane")
        let (broker, logger) = try quietBroker(directory.path)
        defer { broker.shutdown() }
        for name in ["in", "in.priority", "done"] { try await broker.createTopic(TopicSpec(name: name, partitions: 1)) }
        _ = try await broker.produce((0..<50).map { ProducerRecord(topic: "in", key: "s-\($0)", value: "{}") })
        var configuration = WorkerRuntimeConfiguration(group: "runtime-test", standardTopics: ["in"], priorityTopics: ["in.priority"], policy: StepPolicy(timeoutSeconds: 120), router: nil)
        configuration.shutdownGrace = .milliseconds(10)
        let gate = Gate()
        let runtime = WorkerRuntime(broker: broker, handler: StuckStandard(gate: gate), configuration: configuration, logger: logger)
        let task = Task { try await runtime.run() }
        defer { gate.open.store(true, ordering: .relaxed) }
        var deadline = ContinuousClock.now + .seconds(20)
        while !gate.isStuck, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(gate.isStuck, "the standard lane took its batch and is stuck reading it")
        _ = try await broker.produce([ProducerRecord(topic: "in.priority", key: "v-1", value: "{}")])
        deadline = ContinuousClock.now + .seconds(20)
        var done: [String?] = []
        while done.isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            done = try await broker.read(topic: "done", partition: 0, from: 0, maxRecords: 100).map(\.keyString)
        }
        #expect(done == ["v-1"], "the VIP record was published while the standard batch is still stuck")
        gate.open.store(true, ordering: .relaxed)
        task.cancel()
        _ = try? await task.value
        withExtendedLifetime(directory) {}
    }

    /// A trickle of lone records, 5 ms apart: each used to make a commit (and a sync of the
    /// offsets file) of its own, and each a store transaction of its own for a role whose
    /// transaction costs far more than its records (the tracker). Commits are at most one per
    /// `commitSpacing`, and a lane with `gatherFor` takes what came during its pause into the
    /// same batch; everything is still applied, published and committed.
    @Test(arguments: [false, true])
    func aTrickleOfRecordsMakesFewCommitsAndGatheredBatches(inline: Bool) async throws {
        final class Counter: Sendable {
            let commits = Atomic(0)
        }
        let directory = TemporaryDirectory("runtime-trickle")
        let (broker, logger) = try quietBroker(directory.path)
        defer { broker.shutdown() }
        for name in ["in", "done"] { try await broker.createTopic(TopicSpec(name: name, partitions: 1)) }
        var configuration = WorkerRuntimeConfiguration(group: "runtime-test", standardTopics: ["in"], priorityTopics: [], policy: StepPolicy(timeoutSeconds: 120), router: nil)
        configuration.shutdownGrace = .milliseconds(10)
        let gather = Duration.milliseconds(100)
        if inline { configuration.gatherFor = gather }
        let counter = Counter()
        configuration.onCommitted = { _ in counter.commits.add(1, ordering: .relaxed) }
        let store = FailingStore()
        let runtime = WorkerRuntime(broker: broker, handler: Handler(store: store, inline: inline), configuration: configuration, logger: logger)
        let task = Task { try await runtime.run() }
        while try await broker.lag(group: "runtime-test").isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        let records = 40
        let started = ContinuousClock.now
        for i in 0..<records {
            _ = try await broker.produce([ProducerRecord(topic: "in", key: "o-\(i)", value: "{}")])
            try await Task.sleep(for: .milliseconds(5))
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let published = try await Self.count("done", broker)
            let behind = try await broker.lag(group: "runtime-test").contains { $0.lag > 0 }
            if published >= records && !behind { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let elapsed = ContinuousClock.now - started
        task.cancel()
        _ = try? await task.value
        #expect(try await Self.count("done", broker) == records)
        #expect(store.applied.flatMap { $0 }.count == records, "each record applied once")
        // One commit per spacing of the trickle at most, and the one that caught up at the end.
        let commitBound = Int(elapsed / WorkerRuntime<Handler>.commitSpacing) + 2
        let commits = counter.commits.load(ordering: .relaxed)
        #expect(commits <= commitBound, "\(commits) commits for \(records) records over \(elapsed); at most \(commitBound)")
        if inline {
            let batchBound = Int(elapsed / gather) + 2
            #expect(store.applied.count <= batchBound, "\(store.applied.count) batches for \(records) records over \(elapsed); at most \(batchBound)")
        }
        withExtendedLifetime(directory) {}
    }

    /// The offsets `onCommitted` reported, highest per partition.
    final class CommitsSeen: Sendable {
        private let seen = Mutex([TopicPartition: Int64]())
        func note(_ offsets: [TopicPartition: Int64]) {
            seen.withLock { $0.merge(offsets, uniquingKeysWith: max) }
        }
        var highest: [TopicPartition: Int64] { seen.withLock { $0 } }
    }

    static func count(_ topic: String, _ broker: EmbeddedBroker) async throws -> Int {
        try await broker.describeTopic(topic).partitions.reduce(0) { $0 + Int($1.endOffset) }
    }

    @Test func aMessageWhoseTransactionAlwaysFailsIsSetAsideAndTheRestOfItsBatchGoesThrough() async throws {
        let orders = (0..<20).map { "o-\($0)" }
        let store = FailingStore(poisonOrders: ["o-7"])
        let commits = CommitsSeen()
        let broker = try await run(Handler(store: store, inline: false), orders: orders, commits: commits) { broker in
            try await Self.count("done", broker) == 19
        }
        defer { broker.shutdown() }
        #expect(try await Self.count("in.poison", broker) == 1)
        let poison = try await broker.read(topic: "in.poison", partition: 0, from: 0, maxRecords: 10)
        #expect(poison.first?.keyString == "o-7")
        #expect(poison.first?.header(SagaHeader.errorClass) == PoisonRecord.errorClass)
        #expect(poison.first?.header(SagaHeader.originalOffset) == "7")
        let dead = try await broker.read(topic: "in.dlt", partition: 0, from: 0, maxRecords: 10)
        #expect(dead.map(\.keyString) == ["o-7"], "the order still ends: its dead letter drives compensation")
        #expect(Set(store.applied.flatMap { $0 }.compactMap(\.keyString)) == Set(orders).subtracting(["o-7"]))
        #expect(try await broker.lag(group: "runtime-test").allSatisfy { $0.lag == 0 }, "every offset committed, the set-aside one too")
        // What the tracker relies on to move its own offsets past records it never recorded.
        #expect(commits.highest[TopicPartition("in", 0)] == 20, "onCommitted was told of the commit past the set-aside record")
    }

    /// Alone in its batch (the last of a backlog) a poison message is still set aside once an
    /// empty transaction shows the store is fine; it used to be retried forever.
    @Test func aPoisonMessageAloneIsSetAsideWhenTheStoreCommitsWithoutIt() async throws {
        let store = FailingStore(poisonOrders: ["o-0"])
        let broker = try await run(Handler(store: store, inline: false), orders: ["o-0"]) { broker in
            try await broker.listTopics().contains { $0.name == "in.poison" }
        }
        defer { broker.shutdown() }
        #expect(try await Self.count("in.poison", broker) == 1)
        #expect(try await Self.count("in.dlt", broker) == 1, "its order still ends through its dead letter")
        #expect(try await broker.lag(group: "runtime-test").allSatisfy { $0.lag == 0 })
    }

    /// Alone, and the store refusing everything for a while: waited out, not set aside.
    @Test func aLoneMessageIsNotSetAsideWhileTheStoreRefusesEverything() async throws {
        let store = FailingStore(failEverything: 8)
        let broker = try await run(Handler(store: store, inline: false), orders: ["o-0"]) { broker in
            try await Self.count("done", broker) == 1
        }
        defer { broker.shutdown() }
        #expect(try await broker.listTopics().contains { $0.name == "in.poison" } == false)
        #expect(store.applied.flatMap { $0 }.compactMap(\.keyString) == ["o-0"])
    }

    @Test func aStoreThatRefusesEverythingForAWhileSetsNothingAside() async throws {
        let orders = (0..<20).map { "o-\($0)" }
        // Three whole-batch failures, then the first message fails three times alone (it is a
        // suspect while the others go through), then the store is back for good.
        let store = FailingStore(failEverything: 6)
        let broker = try await run(Handler(store: store, inline: false), orders: orders) { broker in
            try await Self.count("done", broker) == 20
        }
        defer { broker.shutdown() }
        #expect(try await broker.listTopics().contains { $0.name == "in.poison" } == false, "nothing is set aside for the store's fault")
        #expect(try await Self.count("in.dlt", broker) == 0)
        #expect(Set(store.applied.flatMap { $0 }.compactMap(\.keyString)) == Set(orders))
    }

    /// A disk that fills mid-batch lets the first messages through alone and refuses the rest:
    /// they are not poison, and wait for the space instead of being set aside.
    @Test func aFullDiskIsWaitedOutAndSetsNothingAside() async throws {
        let orders = (0..<8).map { "o-\($0)" }
        // Room for 3: the batch is refused, 3 go through alone, the other 5 are refused alone
        // and again after them; the space comes back only after that.
        let store = FailingStore(room: 3, fullFor: .seconds(3))
        let broker = try await run(Handler(store: store, inline: false), orders: orders) { broker in
            try await Self.count("done", broker) == 8
        }
        defer { broker.shutdown() }
        #expect(try await broker.listTopics().contains { $0.name == "in.poison" } == false, "nothing is set aside for a full disk")
        #expect(try await Self.count("in.dlt", broker) == 0)
        #expect(Set(store.applied.flatMap { $0 }.compactMap(\.keyString)) == Set(orders))
    }

    #if os(Linux)
    /// The tracker's store work yields the cores to the steps': the runtime runs a handler's
    /// transactions on the blocking threads of the handler's priority.
    @Test(arguments: [BlockingIO.Priority.normal, .background])
    func aHandlersTransactionsRunAtItsPriority(_ priority: BlockingIO.Priority) async throws {
        let ours = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let store = FailingStore()
        let broker = try await run(Handler(store: store, inline: true, priority: priority), orders: (0..<200).map { "o-\($0)" }) { broker in
            try await Self.count("done", broker) == 200
        }
        defer { broker.shutdown() }
        let expected = priority == .background ? max(ours, BlockingIO.Priority.backgroundNiceness) : ours
        #expect(store.appliedAtNiceness.withLock { $0 } == [expected])
    }
    #endif

    @Test func anInlineHandlerWithOneFlusherAppliesEachPartitionInConsumptionOrder() async throws {
        // Orders repeat across partitions, as the tracker's events do.
        let orders = (0..<3000).map { "o-\($0 % 97)" }
        let store = FailingStore()
        let broker = try await run(Handler(store: store, inline: true), orders: orders, partitions: 3, flushers: 1, batchSize: 128) { broker in
            try await Self.count("done", broker) == 3000
        }
        defer { broker.shutdown() }
        var last: [Int: Int64] = [:]
        var seen = 0
        for record in store.applied.flatMap({ $0 }) {
            #expect(record.offset > last[record.partition] ?? -1, "partition \(record.partition) went back to offset \(record.offset)")
            last[record.partition] = record.offset
            seen += 1
        }
        #expect(seen == 3000)
    }

    /// The batch fails, then its messages are applied alone: a later message of a partition
    /// must not be applied before an earlier one that failed alone. The tracker's recorded
    /// offsets moved past the failed record, whose retry was then skipped as already recorded.
    @Test func messagesAppliedAloneKeepTheirPartitionsOrder() async throws {
        let orders = (0..<6).map { "o-\($0)" }
        // Three whole-batch attempts and three alone, then it goes through.
        let store = FailingStore(flaky: (order: "o-2", times: 6))
        let broker = try await run(Handler(store: store, inline: true), orders: orders, flushers: 1) { broker in
            try await Self.count("done", broker) == 6
        }
        defer { broker.shutdown() }
        #expect(store.applied.flatMap { $0 }.compactMap(\.keyString) == orders)
        #expect(try await broker.listTopics().contains { $0.name == "in.poison" } == false, "it went through on its second turn")
    }
}
