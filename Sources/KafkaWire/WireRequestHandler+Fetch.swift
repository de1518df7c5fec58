import Messaging
import NIOCore

extension WireRequestHandler {
    // MARK: Fetch

    struct FetchWanted {
        var topic: String
        var partition: Int32
        var offset: Int64
        var maxBytes: Int32
    }

    struct FetchAnswer {
        var wanted: FetchWanted
        var error: ErrorCode
        var highWatermark: Int64 = -1
        var logStartOffset: Int64 = -1
        var batches: [ByteBuffer] = []
    }

    func writeFetch(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, grants: TopicGrants?) async throws {
        _ = try r.int32()  // replica
        let maxWait = try r.int32()
        let minBytes = try r.int32()
        let maxBytes = try r.int32()
        _ = try r.int8()  // isolation
        if version >= 7 { _ = try r.int32(); _ = try r.int32() }  // session id, epoch
        var wanted: [FetchWanted] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            let topic = try r.string()
            for _ in 0..<max(try r.arrayCount(), 0) {
                let partition = try r.int32()
                if version >= 9 { _ = try r.int32() }  // current leader epoch
                let offset = try r.int64()
                if version >= 5 { _ = try r.int64() }  // log start offset
                let partitionMaxBytes = try r.int32()
                wanted.append(FetchWanted(topic: topic, partition: partition, offset: offset, maxBytes: partitionMaxBytes))
            }
        }
        // Forgotten topics (v7+) and rack (v11) follow; nothing here depends on them.
        // Long poll: park on the partitions' waiters until data arrives or max_wait passes.
        let deadline = ContinuousClock.now + .milliseconds(Int(max(0, min(maxWait, options.maxFetchWaitMilliseconds))))
        var answers: [FetchAnswer] = []
        while true {
            answers = []
            var budget = Int(max(maxBytes, 1))
            var gathered = 0
            var waitOn: [TopicPartition: Int64] = [:]
            let topics = await describe(wanted.map(\.topic))
            for want in wanted {
                if let grants, !grants.mayConsume(want.topic) {
                    answers.append(FetchAnswer(wanted: want, error: .topicAuthorizationFailed))
                    continue
                }
                guard let topic = topics[want.topic], want.partition >= 0, Int(want.partition) < topic.partitions.count else {
                    answers.append(FetchAnswer(wanted: want, error: .unknownTopicOrPartition))
                    continue
                }
                let p = topic.partitions[Int(want.partition)]
                guard want.offset >= p.beginOffset, want.offset <= p.endOffset else {
                    answers.append(FetchAnswer(wanted: want, error: .offsetOutOfRange, highWatermark: p.endOffset, logStartOffset: p.beginOffset))
                    continue
                }
                var answer = FetchAnswer(wanted: want, error: .none, highWatermark: p.endOffset, logStartOffset: p.beginOffset)
                if want.offset < p.endOffset && budget > 0 {
                    // The first partition with data always gets at least one whole batch (as Kafka does).
                    let limit = gathered == 0 ? max(Int(want.maxBytes), 1) : min(Int(want.maxBytes), budget)
                    if limit > 0 {
                        let stored = try broker.readBatches(topic: want.topic, partition: Int(want.partition), from: want.offset, maxBytes: limit)
                        answer.batches = stored.parts
                        answer.highWatermark = stored.highWatermark
                        let read = stored.count
                        budget -= read
                        gathered += read
                    }
                } else if want.offset == p.endOffset {
                    waitOn[TopicPartition(want.topic, Int(want.partition))] = want.offset
                }
                answers.append(answer)
            }
            if gathered >= max(Int(minBytes), 1) || ContinuousClock.now >= deadline || wanted.isEmpty { break }
            if gathered > 0 && waitOn.isEmpty { break }
            await broker.waitForRecords(waitOn, until: deadline)
            if Task.isCancelled { break }
        }
        w.int32(0)  // throttle
        if version >= 7 { w.int16(0); w.int32(0) }  // error, session id
        var byTopic: [(String, [FetchAnswer])] = []
        for answer in answers {
            if let i = byTopic.firstIndex(where: { $0.0 == answer.wanted.topic }) { byTopic[i].1.append(answer) } else { byTopic.append((answer.wanted.topic, [answer])) }
        }
        w.array(byTopic) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, a in
                w.int32(a.wanted.partition)
                w.int16(a.error.rawValue)
                w.int64(a.highWatermark)
                w.int64(a.highWatermark)  // last stable offset: no transactions
                if version >= 5 { w.int64(a.logStartOffset) }
                w.int32(-1)  // aborted transactions: null
                if version >= 11 { w.int32(-1) }  // preferred read replica
                w.bytes(a.batches)
            }
        }
    }

    // MARK: ListOffsets

    func writeListOffsets(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, grants: TopicGrants?) async throws {
        _ = try r.int32()  // replica
        if version >= 2 { _ = try r.int8() }
        var asked: [(String, [(Int32, Int64)])] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            let topic = try r.string()
            var partitions: [(Int32, Int64)] = []
            for _ in 0..<max(try r.arrayCount(), 0) { partitions.append((try r.int32(), try r.int64())) }
            asked.append((topic, partitions))
        }
        let topics = await describe(asked.map(\.0))
        var answers: [(String, [(Int32, ErrorCode, Int64, Int64)])] = []
        for (name, partitions) in asked {
            var rows: [(Int32, ErrorCode, Int64, Int64)] = []
            for (partition, timestamp) in partitions {
                if let grants, !grants.mayConsume(name) {
                    rows.append((partition, .topicAuthorizationFailed, -1, -1))
                    continue
                }
                guard let topic = topics[name], partition >= 0, Int(partition) < topic.partitions.count else {
                    rows.append((partition, .unknownTopicOrPartition, -1, -1))
                    continue
                }
                let p = topic.partitions[Int(partition)]
                switch timestamp {
                case -1: rows.append((partition, .none, -1, p.endOffset))
                case -2: rows.append((partition, .none, -1, p.beginOffset))
                default:
                    let found = try await firstOffset(atOrAfter: timestamp, topic: name, partition: Int(partition), from: p.beginOffset, to: p.endOffset)
                    rows.append((partition, .none, found?.1 ?? -1, found?.0 ?? -1))
                }
            }
            answers.append((name, rows))
        }
        if version >= 2 { w.int32(0) }
        w.array(answers) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, row in
                w.int32(row.0)
                w.int16(row.1.rawValue)
                w.int64(row.2)
                w.int64(row.3)
            }
        }
    }

    /// The first offset whose timestamp is at or after `timestamp` (a scan: fine for the
    /// inspection tools that ask).
    func firstOffset(atOrAfter timestamp: Int64, topic: String, partition: Int, from: Int64, to end: Int64) async throws -> (Int64, Int64)? {
        var offset = from
        while offset < end {
            let records = try await broker.read(topic: topic, partition: partition, from: offset, maxRecords: 2000)
            guard let last = records.last else { return nil }
            if let hit = records.first(where: { $0.timestamp >= timestamp }) { return (hit.offset, hit.timestamp) }
            offset = last.offset + 1
        }
        return nil
    }
}
