@testable import Broker
import Foundation
@testable import Messaging
import Synchronization
import TestSupport
import Testing

/// Consumer groups on the real embedded broker and real files.
@Suite struct ConsumerGroupTests {
    private func config(_ id: String, session: Duration = .seconds(10), onRevoke: (@Sendable (Set<TopicPartition>) async -> Void)? = nil) -> ConsumerConfiguration {
        var c = ConsumerConfiguration()
        c.clientID = id
        c.sessionTimeout = session
        c.onRevoke = onRevoke
        return c
    }

    @Test func membersJoinLeaveStopPollingAndRejoinWithoutAPartitionEverHavingTwoOwners() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "orders", partitions: 6))
        let a = try await broker.makeEmbeddedConsumer(group: "g", topics: ["orders"], configuration: config("a", session: .seconds(2)))
        let b = try await broker.makeEmbeddedConsumer(group: "g", topics: ["orders"], configuration: config("b", session: .seconds(2)))
        let c = try await broker.makeEmbeddedConsumer(group: "g", topics: ["orders"], configuration: config("c", session: .seconds(2)))
        let members = [a, b, c]

        func pollAll(_ consumers: [EmbeddedGroupConsumer], rounds: Int) async throws {
            for _ in 0..<rounds {
                for consumer in consumers { _ = try await consumer.poll(maxRecords: 100, maxWait: .milliseconds(10)) }
                try await checkDisjoint(consumers)
            }
        }
        func checkDisjoint(_ consumers: [EmbeddedGroupConsumer]) async throws {
            var owner: [TopicPartition: String] = [:]
            for consumer in consumers {
                for tp in await consumer.assignment() {
                    #expect(owner[tp] == nil, "\(tp) owned by both \(owner[tp] ?? "") and \(consumer.memberID)")
                    owner[tp] = consumer.memberID
                }
            }
        }

        try await pollAll(members, rounds: 3)
        #expect(await a.assignment().count == 2)
        #expect(await b.assignment().count == 2)
        #expect(await c.assignment().count == 2)

        // c leaves: its two partitions go to a and b.
        await c.close()
        try await pollAll([a, b], rounds: 3)
        #expect(await a.assignment().count == 3)
        #expect(await b.assignment().count == 3)

        // b stops polling: after the session timeout a owns everything.
        let deadline = ContinuousClock.now + .seconds(15)
        while await a.assignment().count < 6, ContinuousClock.now < deadline {
            _ = try await a.poll(maxRecords: 100, maxWait: .milliseconds(100))
            try await checkDisjoint([a])
        }
        #expect(await a.assignment().count == 6)
        // The expelled member's commits are fenced.
        await #expect(throws: BrokerError.self) { try await b.commit([TopicPartition("orders", 0): 1]) }
        // Its next poll joins again, as a Kafka client does after a long stall, holding nothing
        // it held before; the two share the partitions again, never one partition twice.
        let rejoined = try await b.poll(maxRecords: 1, maxWait: .zero)
        #expect(rejoined.isEmpty)
        try await pollAll([a, b], rounds: 4)
        #expect(await a.assignment().count == 3)
        #expect(await b.assignment().count == 3)
    }

    @Test func uncommittedRecordsAreRedeliveredToTheNextOwnerFromTheCommittedOffset() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "orders", partitions: 1))
        _ = try await broker.produce((0..<20).map { record("orders", "o-\($0)", "v\($0)", partition: 0) })
        let first = try await broker.makeConsumer(group: "g", topics: ["orders"], configuration: config("first"))
        let batch = try await first.poll(maxRecords: 10, maxWait: .seconds(1))
        #expect(batch.map(\.offset) == Array(0..<10))
        try await first.commit([TopicPartition("orders", 0): 7])
        // It read up to 9 but committed only up to 7, then dies (leaves).
        await first.close()
        let second = try await broker.makeConsumer(group: "g", topics: ["orders"], configuration: config("second"))
        var redelivered: [ConsumerRecord] = []
        while redelivered.count < 13 {
            redelivered += try await second.poll(maxRecords: 100, maxWait: .seconds(1))
        }
        #expect(redelivered.map(\.offset) == Array(7..<20))
        #expect(redelivered.first?.valueString == "v7")
    }

    @Test func theRevokeCallbackCommitsBeforeThePartitionMoves() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 2))
        _ = try await broker.produce((0..<10).map { record("t", nil, "p0-\($0)", partition: 0) } + (0..<10).map { record("t", nil, "p1-\($0)", partition: 1) })
        let revoked = Mutex<Set<TopicPartition>>([])
        let holder = Mutex<EmbeddedGroupConsumer?>(nil)
        let a = try await broker.makeEmbeddedConsumer(group: "g", topics: ["t"], configuration: config("a") { partitions in
            revoked.withLock { $0.formUnion(partitions) }
            // Commit what was processed: position of each revoked partition.
            if let me = holder.withLock({ $0 }) {
                var offsets: [TopicPartition: Int64] = [:]
                for tp in partitions { offsets[tp] = me.position(tp) }
                try? await me.commit(offsets)
            }
        })
        holder.withLock { $0 = a }
        var seen = 0
        while seen < 20 { seen += try await a.poll(maxRecords: 100, maxWait: .seconds(1)).count }
        let b = try await broker.makeEmbeddedConsumer(group: "g", topics: ["t"], configuration: config("b"))
        _ = try await b.poll(maxRecords: 10, maxWait: .milliseconds(10))
        _ = try await a.poll(maxRecords: 10, maxWait: .milliseconds(10))
        let moved = try await b.poll(maxRecords: 10, maxWait: .milliseconds(200))
        #expect(revoked.withLock { $0 } == [TopicPartition("t", 1)])
        #expect(moved.isEmpty, "finished work was committed on revoke, so nothing is redelivered")
        #expect(await b.assignment() == [TopicPartition("t", 1)])
        #expect(broker.committedOffset(group: "g", TopicPartition("t", 1)) == 10)
    }

    @Test func anEmptyPollWakesAsSoonAsARecordArrives() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 3))
        let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: config("c"))
        #expect(try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(50)).isEmpty)
        let start = ContinuousClock.now
        async let produced: RecordMetadata = {
            try await Task.sleep(for: .milliseconds(200))
            return try await broker.produce(record("t", "late", "hello"))
        }()
        let records = try await consumer.poll(maxRecords: 10, maxWait: .seconds(30))
        let waited = ContinuousClock.now - start
        _ = try await produced
        #expect(records.map(\.valueString) == ["hello"])
        #expect(waited >= .milliseconds(150))
        #expect(waited < .seconds(10), "woken by the record, not by the 30 s max-wait")
    }

    @Test func anEmptyPollWaitsWithoutSpinning() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 3))
        let consumer = try await broker.makeEmbeddedConsumer(group: "g", topics: ["t"], configuration: config("c"))
        _ = try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(10))
        let before = consumer.fetchPasses
        let start = ContinuousClock.now
        let records = try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(800))
        #expect(records.isEmpty)
        #expect(ContinuousClock.now - start >= .milliseconds(800))
        // One pass, one more after registering to wait, one after the deadline wakes it: no polling loop.
        #expect(consumer.fetchPasses - before <= 3)
    }

    @Test func pausedPartitionsAreSkippedUntilResumed() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 2))
        _ = try await broker.produce([record("t", nil, "zero", partition: 0), record("t", nil, "one", partition: 1)])
        let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: config("c"))
        _ = try await consumer.poll(maxRecords: 0, maxWait: .zero)
        await consumer.pause([TopicPartition("t", 0)])
        var got = try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(100))
        #expect(got.map(\.valueString) == ["one"])
        #expect(try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(50)).isEmpty)
        await consumer.resume([TopicPartition("t", 0)])
        got = try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(100))
        #expect(got.map(\.valueString) == ["zero"])
    }

    @Test func seekRereadsFromTheGivenOffset() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
        _ = try await broker.produce((0..<10).map { record("t", nil, "v\($0)", partition: 0) })
        let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: config("c"))
        #expect(try await consumer.poll(maxRecords: 100, maxWait: .seconds(1)).count == 10)
        try await consumer.seek(TopicPartition("t", 0), to: 4)
        #expect(try await consumer.poll(maxRecords: 2, maxWait: .seconds(1)).map(\.offset) == [4, 5])
        await #expect(throws: BrokerError.self) { try await consumer.seek(TopicPartition("t", 9), to: 0) }
    }

    @Test func lagIsEndOffsetMinusCommittedPerPartition() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 2))
        _ = try await broker.produce((0..<7).map { record("t", nil, "a\($0)", partition: 0) } + (0..<3).map { record("t", nil, "b\($0)", partition: 1) })
        let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: config("c"))
        _ = try await consumer.poll(maxRecords: 0, maxWait: .zero)
        try await consumer.commit([TopicPartition("t", 0): 5])
        let lag = try await broker.lag(group: "g")
        #expect(lag.map(\.lag) == [2, 3])
        #expect(lag.map(\.committedOffset) == [5, nil])
        #expect(lag.map(\.endOffset) == [7, 3])
        #expect(try await broker.listGroups() == ["g"])
    }

    /// A group without members or commits (workers down) lags by every record of the topics it
    /// is asked about; a topic that does not exist is left out.
    @Test func lagCountsEveryPartitionOfTheTopicsAskedForFromItsBeginning() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 2))
        _ = try await broker.produce((0..<4).map { record("t", nil, "a\($0)", partition: 0) } + (0..<3).map { record("t", nil, "b\($0)", partition: 1) })
        #expect(try await broker.lag(group: "idle").isEmpty)
        let lag = try await broker.lag(group: "idle", topics: ["t", "no-such-topic"])
        #expect(lag.map(\.partition) == [0, 1])
        #expect(lag.map(\.lag) == [4, 3])
        #expect(lag.map(\.committedOffset) == [nil, nil])
        #expect(lag.map(\.beginOffset) == [0, 0])
    }

    @Test func aDelayedTopicHoldsRecordsUntilTheirDelayPassedWithoutBlockingOthers() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "retry.1", partitions: 1, deliveryDelayMilliseconds: 700))
        try await broker.createTopic(TopicSpec(name: "main", partitions: 1))
        let consumer = try await broker.makeConsumer(group: "g", topics: ["retry.1", "main"], configuration: config("c"))
        _ = try await consumer.poll(maxRecords: 0, maxWait: .zero)
        let sent = try await broker.produce(record("retry.1", "o-1", "retry me"))
        _ = try await broker.produce(record("main", "o-2", "now"))
        // The undelayed topic flows at once; the delayed record only if its delay has passed
        // by then (a slow machine may poll that late).
        let first = try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(300))
        #expect(first.contains { $0.valueString == "now" })
        for record in first where record.topic == "retry.1" {
            #expect(UnixClock.nowMillis() - record.timestamp >= 700, "a delayed record came before its delay")
        }
        if first.count == 2 { return }
        // The delayed record arrives only once timestamp + delay has passed, and the poll
        // wakes for it by itself (no new record arrives to wake it).
        var delayed: [ConsumerRecord] = []
        while delayed.isEmpty { delayed = try await consumer.poll(maxRecords: 10, maxWait: .seconds(5)) }
        let deliveredAt = UnixClock.nowMillis()
        #expect(delayed.map(\.valueString) == ["retry me"])
        #expect(deliveredAt >= sent.timestamp + 700)
        #expect(deliveredAt < sent.timestamp + 3000)
    }

    /// A batch of a retry tier can hold records due at different times (a jittered retry is
    /// back-dated). A fetch that reached such a batch's not-yet-due record with another
    /// partition's records already in hand once moved the position past it by that other
    /// partition's offset, and the record was never delivered.
    @Test func aRecordNotYetDueBehindDueOnesOfItsBatchIsDeliveredWhenDue() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        try await broker.createTopic(TopicSpec(name: "main", partitions: 1))
        try await broker.createTopic(TopicSpec(name: "retry.1", partitions: 1, deliveryDelayMilliseconds: 4_000))
        let consumer = try await broker.makeConsumer(group: "g", topics: ["main", "retry.1"], configuration: config("c"))
        _ = try await consumer.poll(maxRecords: 0, maxWait: .zero)
        let now = UnixClock.nowMillis()
        func retry(_ value: String, at timestamp: Int64) -> ProducerRecord {
            var r = record("retry.1", value, value, partition: 0)
            r.timestamp = timestamp
            return r
        }
        _ = try await broker.produce([retry("due-1", at: now - 9_000), retry("due-2", at: now - 9_000), retry("later", at: now)])
        _ = try await broker.produce((0..<10).map { record("main", nil, "m\($0)", partition: 0) })
        // Room for exactly main's ten and the two due ones: this fetch stops for room, so it
        // learns nothing about "later".
        var delivered = try await consumer.poll(maxRecords: 12, maxWait: .seconds(1)).map(\.valueString)
        #expect(delivered == (0..<10).map { "m\($0)" } + ["due-1", "due-2"])
        // The next fetch reads `main` first, then reaches "later" with m10...m19 in hand (unless
        // this machine stalled past the delay, when "later" is simply due by then).
        _ = try await broker.produce((10..<20).map { record("main", nil, "m\($0)", partition: 0) })
        let deadline = ContinuousClock.now + .seconds(15)
        while !delivered.contains("later") || delivered.count < 23, ContinuousClock.now < deadline {
            let polled = try await consumer.poll(maxRecords: 100, maxWait: .seconds(1)).map(\.valueString)
            if polled.contains("later") { #expect(UnixClock.nowMillis() >= now + 4_000, "delivered before it was due") }
            delivered += polled
        }
        #expect(delivered.contains("later"))
        #expect(delivered.sorted() == (["due-1", "due-2", "later"] + (0..<20).map { "m\($0)" }).sorted())
        // What a fetch learnt about the not-due record does not outlive a seek back.
        try await consumer.seek(TopicPartition("retry.1", 0), to: 0)
        let again = try await consumer.poll(maxRecords: 100, maxWait: .seconds(1)).map(\.valueString)
        #expect(again == ["due-1", "due-2", "later"])
    }

    /// A topic deleted and made again under its name starts empty: its groups' old offsets
    /// went with it, or they would skip the new topic's first records. Durably so.
    @Test func aTopicMadeAgainAfterItsDeletionIsReadFromItsStart() async throws {
        let dir = TemporaryDirectory()
        let tp = TopicPartition("t", 0)
        do {
            let broker = try openBroker(dir.path)
            try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
            try await broker.createTopic(TopicSpec(name: "other", partitions: 1))
            _ = try await broker.produce((0..<5).map { record("t", nil, "old\($0)", partition: 0) } + (0..<2).map { record("other", nil, "o\($0)", partition: 0) })
            try await broker.commitOffsets(group: "g", [tp: 5, TopicPartition("other", 0): 2])
            try broker.deleteTopic("t")
            #expect(broker.committedOffset(group: "g", tp) == nil)
            #expect(broker.committedOffset(group: "g", TopicPartition("other", 0)) == 2, "other topics' offsets stay")
            // A commit for the deleted topic (a member that read it before) is not kept.
            try await broker.commitOffsets(group: "g", [tp: 5])
            #expect(broker.committedOffset(group: "g", tp) == nil)
            try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
            _ = try await broker.produce((0..<3).map { record("t", nil, "new\($0)", partition: 0) })
            let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: config("c"))
            #expect(try await pollValues(consumer, count: 3) == ["new0", "new1", "new2"])
            await consumer.close()
            broker.shutdown()
        }
        let reopened = try openBroker(dir.path)
        defer { reopened.shutdown() }
        #expect(reopened.committedOffset(group: "g", TopicPartition("other", 0)) == 2)
        #expect(reopened.committedOffset(group: "g", tp) == nil, "the removal is durable; the new topic's group committed nothing yet")
    }

    /// A deletion cut short by a crash (or made by a version that kept offsets): the topic is
    /// gone from topics.json, but its partition's files and its groups' offsets are still
    /// there. Opened again and made again, the topic starts empty and is read from its start.
    @Test func aTopicMadeAgainAfterAnInterruptedDeletionStartsEmpty() async throws {
        let dir = TemporaryDirectory()
        let tp = TopicPartition("t", 0)
        do {
            let broker = try openBroker(dir.path)
            try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
            try await broker.createTopic(TopicSpec(name: "kept", partitions: 1))
            _ = try await broker.produce((0..<4).map { record("t", nil, "old\($0)", partition: 0) } + [record("kept", nil, "k", partition: 0)])
            try await broker.commitOffsets(group: "g", [tp: 4, TopicPartition("kept", 0): 1])
            broker.shutdown()
        }
        // What the crash left: topics.json without "t"; its folder and offsets as they were.
        let topicsFile = dir.path + "/topics.json"
        var specs = try JSONDecoder().decode([TopicSpec].self, from: Data(contentsOf: URL(fileURLWithPath: topicsFile)))
        specs.removeAll { $0.name == "t" }
        try JSONEncoder().encode(specs).write(to: URL(fileURLWithPath: topicsFile))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/t-0"))

        let broker = try openBroker(dir.path)
        defer { broker.shutdown() }
        #expect(broker.committedOffset(group: "g", tp) == nil, "offsets of a topic that is not there are forgotten at open")
        #expect(broker.committedOffset(group: "g", TopicPartition("kept", 0)) == 1)
        try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
        _ = try await broker.produce([record("t", nil, "new0", partition: 0)])
        let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: config("c"))
        #expect(try await pollValues(consumer, count: 1) == ["new0"], "not the old records left in the folder")
        await consumer.close()
    }

    /// Under `fsync never` or `interval`, a crash can cut a partition's unsynced tail while a
    /// commit past it survived. The group used to resume at that commit and skip what was
    /// written at those offsets after the restart.
    @Test func aCommitPastTheRecoveredEndOfALogResumesAtThatEnd() async throws {
        let dir = TemporaryDirectory()
        let tp = TopicPartition("t", 0)
        do {
            let broker = try openBroker(dir.path)
            try await broker.createTopic(TopicSpec(name: "t", partitions: 1))
            _ = try await broker.produce((0..<3).map { record("t", nil, "a\($0)", partition: 0) })
            // What such a crash leaves: a commit at 10 on a log that ends at 3.
            try await broker.commitOffsets(group: "g", [tp: 10])
            broker.shutdown()
        }
        let broker = try openBroker(dir.path)
        defer { broker.shutdown() }
        #expect(broker.committedOffsets(group: "g")[tp] == 3)
        _ = try await broker.produce((3..<7).map { record("t", nil, "b\($0)", partition: 0) })
        let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: config("c"))
        #expect(try await pollValues(consumer, count: 4) == ["b3", "b4", "b5", "b6"])
        await consumer.close()
    }

    /// A member that keeps its own record of what it consumed starts granted partitions where
    /// that record says, even behind the group's commit; partitions it does not name start
    /// at the commit, and an offset before the log's start reads from the start.
    @Test func aMembersOwnStartOffsetsGoBeforeTheGroupsCommits() async throws {
        let dir = TemporaryDirectory()
        let broker = try openBroker(dir.path)
        defer { broker.shutdown() }
        try await broker.createTopic(TopicSpec(name: "t", partitions: 3))
        for partition in 0..<3 {
            _ = try await broker.produce((0..<4).map { record("t", nil, "p\(partition)-\($0)", partition: partition) })
        }
        let (p0, p1, p2) = (TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2))
        try await broker.commitOffsets(group: "g", [p0: 4, p1: 4, p2: 3])
        let asked = Mutex<Set<TopicPartition>>([])
        var configuration = config("own")
        configuration.startOffsets = { granted in
            asked.withLock { $0.formUnion(granted) }
            return [p0: 2, p1: -5]
        }
        let consumer = try await broker.makeConsumer(group: "g", topics: ["t"], configuration: configuration)
        let values = try await pollValues(consumer, count: 7)
        await consumer.close()
        #expect(asked.withLock { $0 } == [p0, p1, p2], "asked with the partitions granted")
        #expect(values.filter { $0.hasPrefix("p0") } == ["p0-2", "p0-3"], "behind the commit at 4")
        #expect(values.filter { $0.hasPrefix("p1") } == ["p1-0", "p1-1", "p1-2", "p1-3"], "from the start")
        #expect(values.filter { $0.hasPrefix("p2") } == ["p2-3"], "not named: from the commit")
    }
}
