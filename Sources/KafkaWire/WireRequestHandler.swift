import Broker
import FulfillmentMetrics
import Logging
import Messaging
import NIOCore

/// Answers Kafka protocol requests from the embedded broker's storage. One instance serves
/// every connection; each connection's requests are handled one after another, in order.
///
/// Record batches are stored as the client sent them (CRC-32C checked, only the base offset
/// patched) and served as stored, compressed ones included. Groups follow Kafka's classic
/// protocol (`ClassicGroup`); their offsets share the broker's offset store with the
/// in-process groups. See docs/broker.md for what is and is not supported.
public struct WireRequestHandler: Sendable {
    public struct Versions: Sendable {
        var key: Int16
        var min: Int16
        var max: Int16
    }

    static let produce: Int16 = 0
    static let fetch: Int16 = 1
    static let listOffsets: Int16 = 2
    static let metadata: Int16 = 3
    static let offsetCommit: Int16 = 8
    static let offsetFetch: Int16 = 9
    static let findCoordinator: Int16 = 10
    static let joinGroup: Int16 = 11
    static let heartbeat: Int16 = 12
    static let leaveGroup: Int16 = 13
    static let syncGroup: Int16 = 14
    static let describeGroups: Int16 = 15
    static let listGroups: Int16 = 16
    static let apiVersions: Int16 = 18
    static let createTopics: Int16 = 19
    static let deleteTopics: Int16 = 20
    static let initProducerID: Int16 = 22
    static let saslHandshake: Int16 = 17
    static let saslAuthenticate: Int16 = 36

    /// What this listener speaks, as ApiVersions reports it (no flexible versions except
    /// ApiVersions v3).
    public static let supported: [Versions] = [
        Versions(key: produce, min: 3, max: 7),
        Versions(key: fetch, min: 4, max: 11),
        Versions(key: listOffsets, min: 1, max: 2),
        Versions(key: metadata, min: 0, max: 4),
        Versions(key: offsetCommit, min: 2, max: 7),
        Versions(key: offsetFetch, min: 1, max: 5),
        Versions(key: findCoordinator, min: 0, max: 2),
        Versions(key: joinGroup, min: 0, max: 5),
        Versions(key: heartbeat, min: 0, max: 3),
        Versions(key: leaveGroup, min: 0, max: 1),
        Versions(key: syncGroup, min: 0, max: 3),
        Versions(key: describeGroups, min: 0, max: 4),
        Versions(key: listGroups, min: 0, max: 2),
        Versions(key: apiVersions, min: 0, max: 3),
        Versions(key: createTopics, min: 0, max: 4),
        Versions(key: deleteTopics, min: 0, max: 1),
        Versions(key: initProducerID, min: 0, max: 1),
        // v0 of the handshake sends the tokens unframed after it, which is not served: a v0
        // handshake is answered UNSUPPORTED_SASL_MECHANISM. It is listed because librdkafka
        // up to 2.0 takes a range without v0 for "no SASL handshake at all"; it and the Java
        // client use v1 and SaslAuthenticate when offered.
        Versions(key: saslHandshake, min: 0, max: 1),
        Versions(key: saslAuthenticate, min: 0, max: 1),
    ]

    typealias ErrorCode = WireErrorCode

    /// How the door behaves beyond the protocol itself.
    public struct Options: Sendable {
        /// The longest a Fetch may wait for data, whatever it asks.
        public var maxFetchWaitMilliseconds: Int32 = 30_000
        /// Partitions of a topic created because a Metadata request named it; `nil` (the
        /// default): topics are only created on purpose (CreateTopics, `fulfillment topics`).
        public var autoCreatePartitions: Int?
        /// Topics this process's saga reads in-process: never deleted over the wire, and
        /// compressed batches are refused on them (the in-process reader decodes only
        /// uncompressed batches).
        public var inProcessTopics: Set<String> = []

        public init() {}
    }

    /// Who sent a request.
    struct Context {
        var clientID: String
        var peer: String
    }

    let broker: EmbeddedBroker
    let host: String
    let port: Int32
    let nodeID: Int32 = 1
    let options: Options
    let logger: Logger
    let groups: GroupCoordinator
    let producers = ProducerSequences()
    let metrics: WireMetrics
    /// SASL: when set, a connection must authenticate before anything but ApiVersions.
    let authenticator: (any SaslAuthenticator)?

    public init(
        broker: EmbeddedBroker, advertisedHost: String, advertisedPort: Int, options: Options = Options(), authenticator: (any SaslAuthenticator)? = nil,
        metrics: WireMetrics = .disabled, logger: Logger
    ) {
        self.authenticator = authenticator
        self.metrics = metrics
        self.broker = broker
        host = advertisedHost
        port = Int32(advertisedPort)
        self.options = options
        self.logger = logger
        groups = GroupCoordinator(broker: broker, logger: logger)
    }

    /// Expires silent group members until cancelled (the listener runs it).
    public func runGroupExpiry() async {
        await groups.runExpiry()
    }

    /// The answer to one request: its bytes (none for Produce with acks=0), sent once
    /// `ready()` returns, i.e. once what it acknowledges is durable.
    public struct Reply: Sendable {
        /// The response without its length prefix, as written (`nil`: none is sent), and the
        /// large byte fields kept by reference (`WireWriter.spliced`).
        var written: [UInt8]?
        var spliced: [WireWriter.Splice] = []
        var durability: [EmbeddedBroker.PendingDurability] = []
        /// A request-level error the answer carries (ApiVersions out of range), for the counter.
        var topLevelError = "NONE"

        init(_ writer: WireWriter?, durability: [EmbeddedBroker.PendingDurability] = [], topLevelError: String = "NONE") {
            written = writer?.bytes
            spliced = writer?.spliced ?? []
            self.durability = durability
            self.topLevelError = topLevelError
        }

        public func ready() async throws {
            for pending in durability { try await pending.wait() }
        }

        /// The response's length in bytes.
        var count: Int { (written?.count ?? 0) + spliced.reduce(0) { $0 + $1.part.readableBytes } }

        /// The response in one array (a copy; the listener sends `frame(allocator:)`).
        public var bytes: [UInt8]? {
            guard let written else { return nil }
            guard !spliced.isEmpty else { return written }
            var out: [UInt8] = []
            out.reserveCapacity(count + 4)
            for (index, buffer) in (frame(allocator: ByteBufferAllocator()) ?? []).enumerated() {
                // The first buffer starts with the length prefix, which `bytes` leaves out.
                buffer.withUnsafeReadableBytes { out.append(contentsOf: index == 0 ? UnsafeRawBufferPointer(rebasing: $0[4...]) : $0) }
            }
            return out
        }

        /// Spliced parts smaller than this are copied into the frame's own buffer: a few
        /// bytes cost less to copy than to send as a piece of their own.
        static let smallestSentAsIs = 8 << 10

        /// The length-prefixed frame as the buffers to write in order (one write of several
        /// buffers goes out in one `writev`): the written bytes with small parts copied in,
        /// and large spliced parts as they were read from disk. `nil` when no answer is sent.
        func frame(allocator: ByteBufferAllocator) -> [ByteBuffer]? {
            guard let written else { return nil }
            var buffers: [ByteBuffer] = []
            var copied = 0
            for splice in spliced where splice.part.readableBytes < Self.smallestSentAsIs { copied += splice.part.readableBytes }
            var head = allocator.buffer(capacity: 4 + written.count + copied)
            head.writeInteger(Int32(count))
            var from = 0
            for splice in spliced {
                head.writeBytes(written[from..<splice.at])
                from = splice.at
                if splice.part.readableBytes < Self.smallestSentAsIs {
                    head.writeImmutableBuffer(splice.part)
                } else {
                    if head.readableBytes > 0 { buffers.append(head) }
                    buffers.append(splice.part)
                    head = allocator.buffer(capacity: written.count - from)
                }
            }
            head.writeBytes(written[from...])
            if head.readableBytes > 0 { buffers.append(head) }
            return buffers
        }
    }

    /// The response to one request frame (without its length prefix), `nil` when the request
    /// wants none (Produce with acks=0). Throws `WireError` when the connection should close.
    /// Waits for durability itself; the listener uses `reply(to:peer:)` to pipeline.
    public func respond(to frame: [UInt8], peer: String = "", session: ConnectionSession? = nil) async throws -> [UInt8]? {
        let reply = try await reply(to: frame, peer: peer, session: session)
        try await reply.ready()
        return reply.bytes
    }

    /// Handles one request frame up to (not including) waiting for durability, so the next
    /// request of the connection can be appended while this one's sync round runs; replies
    /// must still be sent in request order.
    /// `session` is the connection's authentication; nil serves as a listener without SASL.
    public func reply(to frame: [UInt8], peer: String = "", session: ConnectionSession? = nil) async throws -> Reply {
        let key = frame.count >= 2 ? Int16(bitPattern: UInt16(frame[0]) << 8 | UInt16(frame[1])) : -1
        do {
            let reply = try await answer(frame, peer: peer, session: session ?? ConnectionSession(requiresAuthentication: false))
            // `written`, not `bytes`: a fetch's answer must not be joined into one array here.
            metrics.requests[Self.apiName(key), reply.written == nil ? "NONE" : reply.topLevelError].increment()
            return reply
        } catch let error as WireError {
            metrics.requests[Self.apiName(key), Self.refusalCode(error.code)].increment()
            throw error
        }
    }

    /// The API's name for the requests counter (bounded: unknown keys share one name).
    static func apiName(_ key: Int16) -> String {
        switch key {
        case produce: "Produce"
        case fetch: "Fetch"
        case listOffsets: "ListOffsets"
        case metadata: "Metadata"
        case offsetCommit: "OffsetCommit"
        case offsetFetch: "OffsetFetch"
        case findCoordinator: "FindCoordinator"
        case joinGroup: "JoinGroup"
        case heartbeat: "Heartbeat"
        case leaveGroup: "LeaveGroup"
        case syncGroup: "SyncGroup"
        case describeGroups: "DescribeGroups"
        case listGroups: "ListGroups"
        case apiVersions: "ApiVersions"
        case createTopics: "CreateTopics"
        case deleteTopics: "DeleteTopics"
        case initProducerID: "InitProducerId"
        case saslHandshake: "SaslHandshake"
        case saslAuthenticate: "SaslAuthenticate"
        default: "unknown"
        }
    }

    /// A refused frame (the connection closes) as the Kafka error name closest to why.
    static func refusalCode(_ code: WireError.Code) -> String {
        switch code {
        case .unsupported: "UNSUPPORTED_VERSION"
        case .tooLarge: "MESSAGE_TOO_LARGE"
        case .unauthenticated: "SASL_AUTHENTICATION_FAILED"
        default: "INVALID_REQUEST"
        }
    }

    private func answer(_ frame: [UInt8], peer: String, session: ConnectionSession) async throws -> Reply {
        var r = WireReader(frame)
        let key = try r.int16()
        let version = try r.int16()
        let correlationID = try r.int32()
        let context = Context(clientID: try r.nullableString() ?? "", peer: peer)
        guard let range = Self.supported.first(where: { $0.key == key }) else {
            throw WireError(.unsupported, "unknown or unsupported API key \(key) (version \(version))")
        }
        var w = WireWriter()
        w.int32(correlationID)
        if key == Self.apiVersions {
            // Out of range: answer in v0 form with UNSUPPORTED_VERSION, so the client retries lower.
            let answered = version > range.max ? 0 : version
            if version >= 3 && version <= range.max { try r.taggedFields() }
            writeApiVersions(&w, version: answered, error: version > range.max ? .unsupportedVersion : .none)
            return Reply(w, topLevelError: version > range.max ? "UNSUPPORTED_VERSION" : "NONE")
        }
        guard version >= range.min && version <= range.max else {
            throw WireError(.unsupported, "API key \(key) version \(version) is outside \(range.min)-\(range.max)")
        }
        switch key {
        case Self.saslHandshake:
            writeSaslHandshake(&w, mechanism: try r.string(), version: version, session: session, context: context)
            return Reply(w)
        case Self.saslAuthenticate:
            try writeSaslAuthenticate(&w, token: try r.nullableBytes() ?? [], version: version, session: session, context: context)
            return Reply(w)
        default:
            // As Kafka does: before authentication only ApiVersions and SASL are answered.
            guard session.mayServe else {
                throw WireError(.unauthenticated, "\(Self.apiName(key)) before SASL authentication")
            }
        }
        let grants = session.grants
        switch key {
        case Self.metadata: try await writeMetadata(&w, &r, version: version)
        case Self.produce:
            var durability: [EmbeddedBroker.PendingDurability] = []
            let acks = try await writeProduce(&w, &r, version: version, grants: grants, durability: &durability)
            return Reply(acks == 0 ? nil : w, durability: durability)
        case Self.fetch: try await writeFetch(&w, &r, version: version, grants: grants)
        case Self.listOffsets: try await writeListOffsets(&w, &r, version: version, grants: grants)
        case Self.createTopics: try await writeCreateTopics(&w, &r, version: version, grants: grants)
        case Self.deleteTopics: try await writeDeleteTopics(&w, &r, version: version, grants: grants)
        case Self.initProducerID: try writeInitProducerID(&w, &r, version: version)
        case Self.findCoordinator: try writeFindCoordinator(&w, &r, version: version)
        case Self.joinGroup: try await writeJoinGroup(&w, &r, version: version, context: context)
        case Self.syncGroup: try await writeSyncGroup(&w, &r, version: version)
        case Self.heartbeat: try await writeHeartbeat(&w, &r, version: version)
        case Self.leaveGroup: try await writeLeaveGroup(&w, &r, version: version)
        case Self.offsetCommit: try await writeOffsetCommit(&w, &r, version: version, grants: grants)
        case Self.offsetFetch: try await writeOffsetFetch(&w, &r, version: version, grants: grants)
        case Self.describeGroups: try await writeDescribeGroups(&w, &r, version: version)
        case Self.listGroups: await writeListGroups(&w, version: version)
        default: throw WireError(.unsupported, "API key \(key) is not served")
        }
        return Reply(w)
    }

    /// The named topics that exist, described (only those: a request names a few topics,
    /// and Fetch asks again on every round of its long poll).
    func describe(_ names: some Sequence<String>) async -> [String: TopicDescription] {
        var found: [String: TopicDescription] = [:]
        for name in Set(names) {
            if let topic = try? await broker.describeTopic(name) { found[name] = topic }
        }
        return found
    }

    // MARK: ApiVersions

    func writeApiVersions(_ w: inout WireWriter, version: Int16, error: ErrorCode) {
        w.int16(error.rawValue)
        if version >= 3 {
            w.unsignedVarint(UInt32(Self.supported.count + 1))
            for v in Self.supported {
                w.int16(v.key); w.int16(v.min); w.int16(v.max)
                w.unsignedVarint(0)
            }
            w.int32(0)  // throttle
            w.unsignedVarint(0)
        } else {
            w.array(Self.supported) { w, v in w.int16(v.key); w.int16(v.min); w.int16(v.max) }
            if version >= 1 { w.int32(0) }
        }
    }

    // MARK: Metadata

    func writeMetadata(_ w: inout WireWriter, _ r: inout WireReader, version: Int16) async throws {
        let count = try r.arrayCount()
        var names: [String]? = nil
        if count >= 0 {
            names = try (0..<count).map { _ in try r.string() }
            if version == 0 && names!.isEmpty { names = nil }
        }
        let clientAllowsCreation = version >= 4 ? try r.int8() != 0 : true
        if let partitions = options.autoCreatePartitions, clientAllowsCreation, let names {
            for name in names where (try? await broker.describeTopic(name)) == nil && (try? TopicSpec.validateName(name)) != nil {
                do {
                    try await broker.createTopic(TopicSpec(name: name, partitions: partitions))
                    logger.notice("topic auto-created on metadata request", metadata: ["kafka.topic": "\(name)", "kafka.partitions": "\(partitions)"])
                } catch {
                    logger.warning("topic auto-creation failed", metadata: ["kafka.topic": "\(name)", "error.message": "\(error)"])
                }
            }
        }
        let topics = try await broker.listTopics()
        let known = Dictionary(uniqueKeysWithValues: topics.map { ($0.name, $0) })
        if version >= 3 { w.int32(0) }
        w.int32(1)
        w.int32(nodeID)
        w.string(host)
        w.int32(port)
        if version >= 1 { w.string(nil) }  // rack
        if version >= 2 { w.string("fulfillment-embedded") }
        if version >= 1 { w.int32(nodeID) }
        let wanted = names ?? topics.map(\.name)
        w.int32(Int32(wanted.count))
        for name in wanted {
            guard let topic = known[name] else {
                w.int16(ErrorCode.unknownTopicOrPartition.rawValue)
                w.string(name)
                if version >= 1 { w.bool(false) }
                w.int32(0)
                continue
            }
            w.int16(0)
            w.string(name)
            if version >= 1 { w.bool(false) }
            w.int32(Int32(topic.partitions.count))
            for p in topic.partitions {
                w.int16(0)
                w.int32(Int32(p.partition))
                w.int32(nodeID)
                w.array([nodeID]) { $0.int32($1) }
                w.array([nodeID]) { $0.int32($1) }
            }
        }
    }

    // MARK: CreateTopics

    func writeCreateTopics(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, grants: TopicGrants?) async throws {
        struct Wanted { var name: String; var partitions: Int32; var replication: Int16 }
        var wanted: [Wanted] = []
        for _ in 0..<max(try r.arrayCount(), 0) {
            let name = try r.string()
            let partitions = try r.int32()
            let replication = try r.int16()
            for _ in 0..<max(try r.arrayCount(), 0) {  // manual assignments: one broker, nothing to place
                _ = try r.int32()
                for _ in 0..<max(try r.arrayCount(), 0) { _ = try r.int32() }
            }
            for _ in 0..<max(try r.arrayCount(), 0) { _ = try r.string(); _ = try r.nullableString() }
            wanted.append(Wanted(name: name, partitions: partitions, replication: replication))
        }
        _ = try r.int32()  // timeout
        let validateOnly = version >= 1 ? try r.int8() != 0 : false
        var results: [(String, ErrorCode, String?)] = []
        for topic in wanted {
            let partitions = topic.partitions == -1 ? 1 : Int(topic.partitions)
            if let grants, !grants.admin {
                results.append((topic.name, .topicAuthorizationFailed, "this user may not create topics"))
            } else if partitions <= 0 {
                results.append((topic.name, .invalidPartitions, "partitions must be positive"))
            } else if topic.replication > 1 {
                results.append((topic.name, .invalidReplicationFactor, "replication factor \(topic.replication) is larger than the 1 broker"))
            } else if (try? TopicSpec.validateName(topic.name)) == nil {
                results.append((topic.name, .invalidTopic, "invalid topic name"))
            } else if (try? await broker.describeTopic(topic.name)) != nil {
                results.append((topic.name, .topicAlreadyExists, "topic \(topic.name) already exists"))
            } else if validateOnly {
                results.append((topic.name, .none, nil))
            } else {
                do {
                    try await broker.createTopic(TopicSpec(name: topic.name, partitions: partitions))
                    logger.notice("topic created over the wire", metadata: ["kafka.topic": "\(topic.name)", "kafka.partitions": "\(partitions)"])
                    results.append((topic.name, .none, nil))
                } catch {
                    results.append((topic.name, .kafkaStorageError, "\(error)"))
                }
            }
        }
        if version >= 2 { w.int32(0) }
        w.array(results) { w, result in
            w.string(result.0)
            w.int16(result.1.rawValue)
            if version >= 1 { w.string(result.2) }
        }
    }
}

extension WireRequestHandler {
    // MARK: DeleteTopics

    func writeDeleteTopics(_ w: inout WireWriter, _ r: inout WireReader, version: Int16, grants: TopicGrants?) async throws {
        let names = try (0..<max(try r.arrayCount(), 0)).map { _ in try r.string() }
        _ = try r.int32()  // timeout
        var results: [(String, ErrorCode)] = []
        for name in names {
            if let grants, !grants.admin {
                results.append((name, .topicAuthorizationFailed))
                continue
            }
            if options.inProcessTopics.contains(name) {
                logger.notice("topic deletion refused: the saga in this process reads it", metadata: ["kafka.topic": "\(name)"])
                results.append((name, .topicDeletionDisabled))
                continue
            }
            do {
                try broker.deleteTopic(name)
                results.append((name, .none))
            } catch let error as BrokerError where error.code == .unknownTopic {
                results.append((name, .unknownTopicOrPartition))
            } catch {
                logger.error("topic deletion failed", metadata: ["kafka.topic": "\(name)", "error.message": "\(error)"])
                results.append((name, .kafkaStorageError))
            }
        }
        if version >= 1 { w.int32(0) }
        w.array(results) { w, result in
            w.string(result.0)
            w.int16(result.1.rawValue)
        }
    }
}
