import Messaging

/// Consumer groups over the wire: this broker is every group's coordinator.
extension WireRequestHandler {
    // MARK: FindCoordinator

    func writeFindCoordinator(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) throws {
        _ = try r.string()  // key
        let keyType = version >= 1 ? try r.int8() : 0
        if version >= 1 { w.int32(0) }
        guard keyType == 0 else {
            // Transaction coordinators: there are no transactions here.
            w.int16(ErrorCode.coordinatorNotAvailable.rawValue)
            if version >= 1 { w.string("transactions are not supported by this broker") }
            w.int32(-1); w.string(""); w.int32(-1)
            return
        }
        w.int16(0)
        if version >= 1 { w.string(nil) }
        w.int32(nodeID)
        w.string(host)
        w.int32(port)
    }

    // MARK: JoinGroup

    func writeJoinGroup(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, context: Context) async throws {
        let group = try r.string()
        let sessionTimeout = try r.int32()
        let rebalanceTimeout = version >= 1 ? try r.int32() : sessionTimeout
        let memberID = try r.string()
        if version >= 5 { _ = try r.nullableString() }  // group instance id: members are dynamic here
        let protocolType = try r.string()
        var protocols: [(name: String, metadata: [UInt8])] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            protocols.append((try r.string(), try r.nullableBytes() ?? []))
        }
        let request = ClassicGroup.JoinRequest(
            memberID: memberID, clientID: context.clientID, clientHost: context.peer,
            sessionTimeout: .milliseconds(Int(sessionTimeout)), rebalanceTimeout: .milliseconds(Int(max(rebalanceTimeout, sessionTimeout))),
            protocolType: protocolType, protocols: protocols)
        let response = await groups.join(group: group, request)
        if version >= 2 { w.int32(0) }
        w.int16(response.error.rawValue)
        w.int32(response.generation)
        w.string(response.protocolName)
        w.string(response.leader)
        w.string(response.memberID)
        w.array(response.members) { w, member in
            w.string(member.id)
            if version >= 5 { w.string(nil) }
            w.nullableBytes(member.metadata)
        }
    }

    // MARK: SyncGroup

    func writeSyncGroup(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        let group = try r.string()
        let generation = try r.int32()
        let memberID = try r.string()
        if version >= 3 { _ = try r.nullableString() }
        var assignments: [String: [UInt8]] = [:]
        for _ in 0..<max(try r.arrayCount(), 0) {
            let member = try r.string()
            assignments[member] = try r.nullableBytes() ?? []
        }
        let response = await groups.sync(group: group, memberID: memberID, generation: generation, assignments: assignments)
        if version >= 1 { w.int32(0) }
        w.int16(response.error.rawValue)
        w.nullableBytes(response.assignment)
    }

    // MARK: Heartbeat and LeaveGroup

    func writeHeartbeat(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        let group = try r.string()
        let generation = try r.int32()
        let memberID = try r.string()
        if version >= 3 { _ = try r.nullableString() }
        let error = await groups.heartbeat(group: group, memberID: memberID, generation: generation)
        if version >= 1 { w.int32(0) }
        w.int16(error.rawValue)
    }

    func writeLeaveGroup(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        let group = try r.string()
        let memberID = try r.string()
        let error = await groups.leave(group: group, memberID: memberID)
        if version >= 1 { w.int32(0) }
        w.int16(error.rawValue)
    }

    // MARK: OffsetCommit and OffsetFetch

    /// Commits and fetches offsets of topics the principal may read (`grants` nil: any).
    func writeOffsetCommit(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, grants: TopicGrants?) async throws {
        let group = try r.string()
        let generation = try r.int32()
        let memberID = try r.string()
        if version >= 7 { _ = try r.nullableString() }
        if version <= 4 { _ = try r.int64() }  // retention: offsets are kept until overwritten
        var asked: [(String, [(Int32, Int64)])] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            let topic = try r.string()
            var partitions: [(Int32, Int64)] = []
            for _ in 0..<max(try r.arrayCount(), 0) {
                let partition = try r.int32()
                let offset = try r.int64()
                if version >= 6 { _ = try r.int32() }  // leader epoch
                _ = try r.nullableString()  // metadata: not kept
                partitions.append((partition, offset))
            }
            asked.append((topic, partitions))
        }
        let topics = await describe(asked.map(\.0))
        var valid: [TopicPartition: Int64] = [:]
        let readable = { (topic: String) in grants?.mayConsume(topic) ?? true }
        for (topic, partitions) in asked where readable(topic) {
            for (partition, offset) in partitions {
                if let count = topics[topic]?.partitions.count, partition >= 0, Int(partition) < count, offset >= 0 {
                    valid[TopicPartition(topic, Int(partition))] = offset
                }
            }
        }
        let outcome = valid.isEmpty ? WireErrorCode.none : await groups.commit(group: group, memberID: memberID, generation: generation, offsets: valid)
        if version >= 3 { w.int32(0) }
        w.array(asked) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, p in
                w.int32(p.0)
                if !readable(topic.0) {
                    w.int16(ErrorCode.topicAuthorizationFailed.rawValue)
                } else if let count = topics[topic.0]?.partitions.count, p.0 >= 0, Int(p.0) < count {
                    w.int16((p.1 >= 0 ? outcome : .offsetOutOfRange).rawValue)
                } else {
                    w.int16(ErrorCode.unknownTopicOrPartition.rawValue)
                }
            }
        }
    }

    func writeOffsetFetch(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, grants: TopicGrants?) async throws {
        let group = try r.string()
        let count = try r.arrayCount()
        var asked: [(String, [Int32])]? = nil
        if count >= 0 {
            asked = []
            for _ in 0..<count {
                let topic = try r.string()
                asked!.append((topic, try (0..<max(try r.arrayCount(), 0)).map { _ in try r.int32() }))
            }
        }
        let readable = { (topic: String) in grants?.mayConsume(topic) ?? true }
        let committed = await groups.committed(group: group).filter { readable($0.key.topic) }
        let answer: [(String, [(Int32, Int64)])]
        if let asked {
            answer = asked.map { topic, partitions in (topic, partitions.map { ($0, committed[TopicPartition(topic, Int($0))] ?? -1) }) }
        } else {
            var byTopic: [String: [(Int32, Int64)]] = [:]
            for (tp, offset) in committed { byTopic[tp.topic, default: []].append((Int32(tp.partition), offset)) }
            answer = byTopic.sorted { $0.key < $1.key }.map { ($0.key, $0.value.sorted { $0.0 < $1.0 }) }
        }
        if version >= 3 { w.int32(0) }
        w.array(answer) { w, topic in
            w.string(topic.0)
            w.array(topic.1) { w, p in
                w.int32(p.0)
                w.int64(p.1)
                if version >= 5 { w.int32(-1) }  // leader epoch
                w.string("")  // metadata
                w.int16((readable(topic.0) ? ErrorCode.none : .topicAuthorizationFailed).rawValue)
            }
        }
        if version >= 2 { w.int16(0) }
    }

    // MARK: DescribeGroups and ListGroups

    func writeDescribeGroups(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        let names = try (0..<max(try r.arrayCount(), 0)).map { _ in try r.string() }
        if version >= 3 { _ = try r.int8() }
        var descriptions: [GroupCoordinator.GroupDescription] = []
        for name in names { descriptions.append(await groups.describe(name)) }
        if version >= 1 { w.int32(0) }
        w.array(descriptions) { w, group in
            w.int16(0)
            w.string(group.name)
            w.string(group.phase)
            w.string(group.protocolType)
            w.string(group.protocolName)
            w.array(group.members) { w, member in
                w.string(member.id)
                if version >= 4 { w.string(nil) }
                w.string(member.clientID)
                w.string(member.clientHost)
                w.nullableBytes(member.metadata(for: group.protocolName))
                w.nullableBytes(member.assignment)
            }
            if version >= 3 { w.int32(Int32.min) }  // authorized operations: not computed
        }
    }

    func writeListGroups(_ w: inout WireWriter, version: Int16) async {
        let listed = await groups.list()
        if version >= 1 { w.int32(0) }
        w.int16(0)
        w.array(listed) { w, group in
            w.string(group.0)
            w.string(group.1)
        }
    }
}
