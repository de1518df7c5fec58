import Foundation
@testable import KafkaClient
import Logging
@testable import Messaging
import Synchronization
import Testing

/// The librdkafka client against librdkafka's mock cluster (3 brokers, real Kafka protocol,
/// in this process): the same abstraction the embedded broker passes, plus Kafka's faults.
@Suite(.serialized, .timeLimit(.minutes(3))) struct KafkaClientTests {
    let cluster: KafkaMockCluster
    let broker: KafkaClusterClient

    init() throws {
        cluster = try KafkaMockCluster(brokers: 3)
        broker = try KafkaClusterClient(configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), logger: Logger(label: "kafka-test"))
    }

    private func records(_ topic: String, _ count: Int, prefix: String = "k") -> [ProducerRecord] {
        (0..<count).map { i in
            ProducerRecord(topic: topic, key: "\(prefix)\(i % 37)", value: "value-\(i)", headers: [RecordHeader("n", "\(i)"), RecordHeader("empty", [])])
        }
    }

    /// Polls until `count` records arrived or `seconds` passed.
    private func drain(_ consumer: any GroupConsumer, count: Int, seconds: Double = 20) async throws -> [ConsumerRecord] {
        var got: [ConsumerRecord] = []
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while got.count < count, ContinuousClock.now < deadline {
            got += try await consumer.poll(maxRecords: 500, maxWait: .milliseconds(100))
        }
        return got
    }

    /// Polls until the member owns `count` partitions (joining a group takes a few seconds).
    private func awaitAssignment(_ consumer: any GroupConsumer, count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while await consumer.assignment().count < count, ContinuousClock.now < deadline {
            _ = try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(100))
        }
        #expect(await consumer.assignment().count == count)
    }

    @Test func producesWithKeysAndHeadersAndReadsThemBackAsAGroup() async throws {
        try cluster.createTopic("orders", partitions: 4)
        let sent = records("orders", 1000)
        let acks = try await broker.produce(sent)
        #expect(acks.count == 1000)
        for (record, ack) in zip(sent, acks) {
            // Java clients and the embedded broker place a key on the same partition.
            #expect(ack.partition == Murmur2Partitioner.partition(forKey: record.key, partitionCount: 4))
            #expect(ack.offset >= 0)
        }
        let consumer = try await broker.makeConsumer(group: "g1", topics: ["orders"], configuration: ConsumerConfiguration())
        let got = try await drain(consumer, count: 1000)
        #expect(got.count == 1000)
        let byValue = Dictionary(uniqueKeysWithValues: got.map { ($0.valueString, $0) })
        for (i, record) in sent.enumerated() {
            let back = try #require(byValue["value-\(i)"])
            #expect(back.key == record.key)
            #expect(back.header("n") == "\(i)")
            #expect(back.headers.count == 2)
            #expect(back.headers.last?.value == [])
        }
        // Per partition, offsets arrive in order.
        for partition in 0..<4 {
            let offsets = got.filter { $0.partition == partition }.map(\.offset)
            #expect(offsets == offsets.sorted())
        }
        await consumer.close()
    }

    @Test func committedOffsetsAreWhereTheNextMemberResumes() async throws {
        try cluster.createTopic("steps", partitions: 2)
        _ = try await broker.produce(records("steps", 200))
        let first = try await broker.makeConsumer(group: "g2", topics: ["steps"], configuration: ConsumerConfiguration())
        let got = try await drain(first, count: 200)
        #expect(got.count == 200)
        // Commit only the first 60 of each partition.
        var offsets: [TopicPartition: Int64] = [:]
        for partition in 0..<2 { offsets[TopicPartition("steps", partition)] = 60 }
        try await first.commit(offsets)
        await first.close()

        let lag = try await broker.lag(group: "g2")
        #expect(lag.map(\.committedOffset) == [60, 60])
        #expect(lag.reduce(0) { $0 + $1.lag } == 80)

        let second = try await broker.makeConsumer(group: "g2", topics: ["steps"], configuration: ConsumerConfiguration())
        let again = try await drain(second, count: 80)
        #expect(again.count == 80)
        #expect(again.allSatisfy { $0.offset >= 60 })
        await second.close()
    }

    /// librdkafka names only the partitions a group committed on; lag lists every partition
    /// of a topic the group committed on anywhere, and of the topics asked for, a partition
    /// without a commit lagging by all it holds (before, a group whose workers never ran
    /// showed no lag at all while its work piled up).
    @Test func lagListsEveryPartitionOfATopicNotOnlyTheCommittedOnes() async throws {
        try cluster.createTopic("half", partitions: 2)
        try cluster.createTopic("unread", partitions: 3)
        _ = try await broker.produce((0..<10).map { ProducerRecord(topic: "half", partition: $0 % 2, key: nil, value: Array("v\($0)".utf8)) })
        _ = try await broker.produce((0..<6).map { ProducerRecord(topic: "unread", partition: $0 % 3, key: nil, value: Array("v\($0)".utf8)) })
        let member = try await broker.makeConsumer(group: "g-half", topics: ["half"], configuration: ConsumerConfiguration())
        try await awaitAssignment(member, count: 2)
        try await member.commit([TopicPartition("half", 0): 2])
        await member.close()

        let known = try await broker.lag(group: "g-half")
        #expect(known.map { "\($0.topic)/\($0.partition)" } == ["half/0", "half/1"])
        #expect(known.map(\.committedOffset) == [2, nil])
        #expect(known.map(\.lag) == [3, 5])

        let asked = try await broker.lag(group: "g-half", topics: ["unread", "no-such-topic"])
        #expect(asked.map { "\($0.topic)/\($0.partition)" } == ["half/0", "half/1", "unread/0", "unread/1", "unread/2"])
        #expect(asked.filter { $0.topic == "unread" }.map(\.lag) == [2, 2, 2])
        #expect(try await broker.lag(group: "never-ran", topics: ["unread"]).reduce(0) { $0 + $1.lag } == 6)
    }

    /// A member's own start offsets go before the group's commits, as on the embedded broker.
    @Test func aMembersOwnStartOffsetsGoBeforeTheGroupsCommits() async throws {
        try cluster.createTopic("own", partitions: 3)
        var sent: [ProducerRecord] = []
        for partition in 0..<3 {
            for i in 0..<4 {
                var record = ProducerRecord(topic: "own", key: nil, value: "p\(partition)-\(i)", headers: [])
                record.partition = partition
                sent.append(record)
            }
        }
        _ = try await broker.produce(sent)
        let (p0, p1, p2) = (TopicPartition("own", 0), TopicPartition("own", 1), TopicPartition("own", 2))
        let first = try await broker.makeConsumer(group: "g-own", topics: ["own"], configuration: ConsumerConfiguration())
        #expect(try await drain(first, count: 12).count == 12)
        try await first.commit([p0: 4, p1: 4, p2: 3])
        await first.close()

        var configuration = ConsumerConfiguration()
        configuration.startOffsets = { _ in [p0: 2, p1: 0] }
        let second = try await broker.makeConsumer(group: "g-own", topics: ["own"], configuration: configuration)
        let values = try await drain(second, count: 7).map(\.valueString)
        #expect(values.filter { $0.hasPrefix("p0") } == ["p0-2", "p0-3"], "behind the commit at 4")
        #expect(values.filter { $0.hasPrefix("p1") } == ["p1-0", "p1-1", "p1-2", "p1-3"], "from the start")
        #expect(values.filter { $0.hasPrefix("p2") } == ["p2-3"], "not named: from the commit")
        await second.close()
    }

    @Test func aSecondMemberTakesPartitionsAndTheFirstCommitsOnRevoke() async throws {
        try cluster.createTopic("shared", partitions: 6)
        let revoked = Mutex<Set<TopicPartition>>([])
        var configuration = ConsumerConfiguration()
        configuration.sessionTimeout = .seconds(6)
        let firstBox = Mutex<(any GroupConsumer)?>(nil)
        configuration.onRevoke = { partitions in
            revoked.withLock { $0.formUnion(partitions) }
            // What a worker does: commit what it finished on the partitions that move.
            if let consumer = firstBox.withLock({ $0 }) {
                try? await consumer.commit(Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(0)) }))
            }
        }
        let first = try await broker.makeConsumer(group: "g3", topics: ["shared"], configuration: configuration)
        firstBox.withLock { $0 = first }
        try await awaitAssignment(first, count: 6)

        let second = try await broker.makeConsumer(group: "g3", topics: ["shared"], configuration: ConsumerConfiguration())
        let deadline = ContinuousClock.now + .seconds(40)
        while ContinuousClock.now < deadline {
            _ = try await first.poll(maxRecords: 10, maxWait: .milliseconds(50))
            _ = try await second.poll(maxRecords: 10, maxWait: .milliseconds(50))
            if await first.assignment().count == 3, await second.assignment().count == 3 { break }
        }
        let a = await first.assignment()
        let b = await second.assignment()
        #expect(a.count == 3 && b.count == 3)
        #expect(a.isDisjoint(with: b))
        // Eager rebalancing (the default) revokes everything and hands back what stays; either
        // way the first member was told about the partitions that moved before they moved.
        #expect(revoked.withLock { $0 }.isSuperset(of: b), "the first member was told before its partitions moved")
        // A commit for a partition that moved is refused, as on the embedded broker.
        await #expect(throws: BrokerError.self) {
            try await first.commit([b.first!: 1])
        }
        await second.close()
        await first.close()
    }

    @Test func pausedPartitionsAreSkippedUntilResumed() async throws {
        try cluster.createTopic("pausing", partitions: 2)
        let consumer = try await broker.makeConsumer(group: "g4", topics: ["pausing"], configuration: ConsumerConfiguration())
        try await awaitAssignment(consumer, count: 2)
        let p0 = TopicPartition("pausing", 0)
        await consumer.pause([p0])
        _ = try await broker.produce((0..<20).map { ProducerRecord(topic: "pausing", partition: $0 % 2, key: nil, value: Array("v\($0)".utf8)) })
        let whilePaused = try await drain(consumer, count: 10, seconds: 3)
        #expect(whilePaused.count == 10)
        #expect(whilePaused.allSatisfy { $0.partition == 1 })
        await consumer.resume([p0])
        let after = try await drain(consumer, count: 10)
        #expect(after.count == 10)
        #expect(after.allSatisfy { $0.partition == 0 })
        await consumer.close()
    }

    @Test func delayedTopicsHoldRecordsBackUntilDue() async throws {
        try cluster.createTopic("retry.1", partitions: 1)
        broker.registerDelays([TopicSpec(name: "retry.1", partitions: 1, deliveryDelayMilliseconds: 1500)])
        let consumer = try await broker.makeConsumer(group: "g5", topics: ["retry.1"], configuration: ConsumerConfiguration())
        try await awaitAssignment(consumer, count: 1)
        let sentAt = ContinuousClock.now
        _ = try await broker.produce(records("retry.1", 5))
        let early = try await drain(consumer, count: 1, seconds: 1)
        #expect(early.isEmpty, "a retry must not be delivered before its delay")
        let due = try await drain(consumer, count: 5, seconds: 10)
        #expect(due.count == 5)
        #expect(due.map(\.offset) == [0, 1, 2, 3, 4])
        #expect(ContinuousClock.now - sentAt >= .milliseconds(1400))
        await consumer.close()
    }

    /// librdkafka keeps an application's pause across unassign and assign. A retry tier held
    /// back (paused) for a record not yet due, then revoked and handed back by a rebalance,
    /// came back paused with nothing left to resume it: its retries were never delivered.
    @Test func aHeldDelayedPartitionHandedBackByARebalanceStillDelivers() async throws {
        try cluster.createTopic("retry.held", partitions: 1)
        try cluster.createTopic("elsewhere", partitions: 1)
        broker.registerDelays([TopicSpec(name: "retry.held", partitions: 1, deliveryDelayMilliseconds: 15_000)])
        let revocations = Mutex(0)
        var configuration = ConsumerConfiguration()
        configuration.sessionTimeout = .seconds(6)
        configuration.onRevoke = { _ in revocations.withLock { $0 += 1 } }
        let first = try await broker.makeConsumer(group: "g-held", topics: ["retry.held"], configuration: configuration)
        try await awaitAssignment(first, count: 1)
        let sentAt = ContinuousClock.now
        _ = try await broker.produce(records("retry.held", 3))
        let early = try await drain(first, count: 1, seconds: 1)
        #expect(early.isEmpty, "held back: not due for 15 s")
        // A member subscribed to another topic joins the group: an eager rebalance revokes
        // the held partition and hands it straight back (only the first member wants it).
        let second = try await broker.makeConsumer(group: "g-held", topics: ["elsewhere"], configuration: ConsumerConfiguration())
        let deadline = ContinuousClock.now + .seconds(30)
        var delivered: [ConsumerRecord] = []
        while ContinuousClock.now < deadline {
            delivered += try await first.poll(maxRecords: 10, maxWait: .milliseconds(50))
            _ = try await second.poll(maxRecords: 10, maxWait: .milliseconds(50))
            if revocations.withLock({ $0 }) > 0, await first.assignment().count == 1, await second.assignment().count == 1 { break }
        }
        #expect(revocations.withLock { $0 } > 0, "the rebalance revoked the held partition")
        #expect(ContinuousClock.now - sentAt < .seconds(15), "the rebalance must end before the records are due for this test to mean anything")
        delivered += try await drain(first, count: 3 - delivered.count, seconds: 20)
        #expect(delivered.map(\.offset) == [0, 1, 2])
        #expect(ContinuousClock.now - sentAt >= .milliseconds(14_900))
        await second.close()
        await first.close()
    }

    @Test func producerRetriesThroughLeaderErrorsAndReportsBrokersDown() async throws {
        try cluster.createTopic("faults", partitions: 1)
        // Three Produce requests fail with NOT_LEADER_FOR_PARTITION (6): retried inside, no duplicate.
        cluster.failNextRequests(apiKey: 0, errors: [6, 6, 6])
        let acks = try await broker.produce(records("faults", 10))
        #expect(acks.map(\.offset) == Array(0..<10))

        let impatient = try KafkaClusterClient(configuration: KafkaConfiguration(
            bootstrapServers: cluster.bootstrapServers, properties: ["message.timeout.ms": "1500"]), logger: Logger(label: "kafka-test"))
        defer { impatient.shutdown() }
        _ = try await impatient.produce(records("faults", 1))
        for id in 1...3 { try cluster.setBroker(id, up: false) }
        do {
            _ = try await impatient.produce(records("faults", 3))
            Issue.record("producing with every broker down must fail")
        } catch let error as BrokerError {
            #expect(error.isRetriable, "\(error.code): \(error.message)")
            #expect(!error.isFatal)
        }
        for id in 1...3 { try cluster.setBroker(id, up: true) }
        // Back up: a retry of the same call succeeds once the client has reconnected (what
        // the worker runtime does with a retriable publish failure).
        var later: [RecordMetadata] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while later.isEmpty, ContinuousClock.now < deadline {
            do { later = try await impatient.produce(records("faults", 2)) } catch let error as BrokerError where error.isRetriable {}
        }
        #expect(later.count == 2)
    }

    @Test func readsAPartitionWithoutAGroupAndDescribesTopics() async throws {
        try cluster.createTopic("dlt", partitions: 3)
        _ = try await broker.produce((0..<30).map { ProducerRecord(topic: "dlt", partition: $0 % 3, key: nil, value: Array("d\($0)".utf8)) })
        let read = try await broker.read(topic: "dlt", partition: 1, from: 2, maxRecords: 100)
        #expect(read.map(\.offset) == Array(2..<10))
        let topic = try await broker.describeTopic("dlt")
        #expect(topic.partitions.map(\.endOffset) == [10, 10, 10])
        #expect(try await broker.listTopics().contains { $0.name == "dlt" })
        await #expect(throws: BrokerError.self) { try await broker.describeTopic("missing-topic") }
    }

    @Test func badPropertiesAreReportedWithTheirName() throws {
        #expect(throws: BrokerError.self) {
            try KafkaClusterClient(configuration: KafkaConfiguration(bootstrapServers: "localhost:1", properties: ["no.such.property": "1"]), logger: Logger(label: "kafka-test"))
        }
        #expect(try KafkaConfiguration.parseProperty("security.protocol = SASL_SSL") == ("security.protocol", "SASL_SSL"))
        #expect(throws: BrokerError.self) { try KafkaConfiguration.parseProperty("novalue") }
    }
}
