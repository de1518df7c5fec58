import Broker
import FulfillmentMetrics
import Logging
import Messaging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOPosix
import ServiceLifecycle

/// Splits the byte stream into Kafka request frames (a 4-byte big-endian length, then the
/// request). A negative or oversized length closes the connection, and so does a frame whose
/// bytes stop coming: from its first byte it has `frameDeadline` to arrive whole.
struct KafkaFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maxFrameBytes: Int
    let frameDeadline: TimeAmount
    /// Armed while a frame is partly read; fires the connection's end if it is not whole in time.
    private var deadline: Scheduled<Void>?

    init(maxFrameBytes: Int, frameDeadline: TimeAmount) {
        self.maxFrameBytes = maxFrameBytes
        self.frameDeadline = frameDeadline
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes > 0 else { return .needMoreData }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else {
            armDeadline(context)
            return .needMoreData
        }
        guard length >= 0, Int(length) <= maxFrameBytes else {
            throw WireError(.tooLarge, "request of \(length) bytes (limit \(maxFrameBytes))")
        }
        guard buffer.readableBytes >= 4 + Int(length) else {
            armDeadline(context)
            return .needMoreData
        }
        deadline?.cancel()
        deadline = nil
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    mutating func decoderRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    private mutating func armDeadline(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let limit = frameDeadline
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: limit) {
            context.fireErrorCaught(WireError(.deadline, "a request frame was not whole within \(limit.nanoseconds / 1_000_000) ms of its first byte"))
            context.close(promise: nil)
        }
    }
}

/// Closes a connection on which nothing was read or written for the idle timeout (the
/// `IdleStateHandler` before it says when), telling the reader why.
final class IdleConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        context.fireErrorCaught(WireError(.idle, "nothing sent or received for the idle timeout"))
        context.close(promise: nil)
    }
}

/// A connection's requests read but not yet answered. The reader takes a place before reading
/// the next request and waits when there is none; the writer gives one back per answer sent.
/// Closing it (the connection is ending) frees a waiting reader with `false`.
final class RequestWindow: Sendable {
    private struct State {
        var free: Int
        var waiter: CheckedContinuation<Bool, Never>?
        var closed = false
    }

    private let state: Mutex<State>

    init(capacity: Int) {
        state = Mutex(State(free: capacity))
    }

    /// True once a place is taken; false when the window closed first.
    func acquire() async -> Bool {
        await withCheckedContinuation { continuation in
            let now: Bool? = state.withLock { state in
                if state.closed { return false }
                guard state.free > 0 else {
                    state.waiter = continuation
                    return nil
                }
                state.free -= 1
                return true
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    func release() {
        let waiter = state.withLock { state in
            guard let waiter = state.waiter else {
                state.free += 1
                return CheckedContinuation<Bool, Never>?.none
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: true)
    }

    func close() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: false)
    }
}

/// What encrypts a connection before its Kafka frames are read: TLS, from the `WireSecurity`
/// module. A protocol so the wire protocol itself links no TLS library (the fuzz targets
/// build this module with sanitizers).
public protocol ConnectionEncryption: Sendable {
    /// Adds the handlers that sit between the socket and the Kafka framing.
    func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations) throws
    /// How connections are protected, for the start-up line ("TLS").
    var summary: String { get }
    /// What went wrong, when `error` is this encryption turning a peer away (a failed
    /// handshake); nil for any other error. Counted and logged once per client as a refusal.
    func refusal(_ error: any Error) -> String?
}

/// The Kafka protocol listener: accepts connections and answers each connection's requests
/// in order; a long-polling Fetch waits on its own connection only. `ListenerLimits` bound
/// what one client can hold: connections, frame size and pace, idleness, requests in flight.
public struct WireListener: Sendable {
    public let host: String
    public let port: Int
    public let limits: ListenerLimits
    let broker: EmbeddedBroker
    let advertised: (host: String, port: Int)?
    let options: WireRequestHandler.Options
    let metrics: WireMetrics
    let logger: Logger
    /// TLS in front of every connection, or nil for plain text.
    public let encryption: (any ConnectionEncryption)?
    /// SASL: when set, every connection authenticates first.
    public let authenticator: (any SaslAuthenticator)?

    /// How connections are protected, for start-up lines: " (TLS, SASL)", or "" for plain
    /// text without authentication.
    public var protection: String {
        let parts = [encryption?.summary, authenticator.map { _ in "SASL" }].compactMap { $0 }
        return parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
    }
    private let gate: ConnectionGate

    /// `advertised` is the address clients are told to connect to (Metadata, FindCoordinator);
    /// by default the one listened on. Set it when listening on 0.0.0.0 or behind a NAT.
    /// Port 0 listens on a free port, which `run` reports and advertises.
    public init(
        broker: EmbeddedBroker, host: String, port: Int, advertised: (host: String, port: Int)? = nil, limits: ListenerLimits = .init(),
        encryption: (any ConnectionEncryption)? = nil, authenticator: (any SaslAuthenticator)? = nil, options: WireRequestHandler.Options = .init(),
        metrics: WireMetrics = .disabled, logger: Logger
    ) {
        self.encryption = encryption
        self.authenticator = authenticator
        self.metrics = metrics
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
        self.broker = broker
        self.advertised = advertised
        self.options = options
        self.gate = ConnectionGate(limits: limits)
    }

    /// Serves until the task is cancelled; `ready` is called with the port once the socket
    /// listens (the one asked for, or the free one port 0 found).
    public func run(ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let limits = limits
        let encryption = encryption
        let openFiles = OpenFileLimit.raiseToHardLimit()
        if openFiles < limits.maxConnections + 256 {
            logger.warning(
                "the process may open \(openFiles) files, fewer than --max-connections \(limits.maxConnections) needs; connections past it wait in the kernel's queue",
                metadata: ["limit.open_files": "\(openFiles)"])
        }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A burst of connects (thousands at once) waits in the kernel instead of being reset.
            .serverChannelOption(.backlog, value: 1_024)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    // A handshake that never finishes is closed by the idle timeout below.
                    try encryption?.addHandlers(to: sync)
                    try sync.addHandler(IdleStateHandler(allTimeout: TimeAmount(limits.idleTimeout)))
                    try sync.addHandler(IdleConnectionCloser())
                    try sync.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: limits.maxFrameBytes, frameDeadline: TimeAmount(limits.frameDeadline))))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let boundPort = server.channel.localAddress?.port ?? port
        let handler = WireRequestHandler(
            broker: broker, advertisedHost: advertised?.host ?? host, advertisedPort: advertised?.port ?? boundPort, options: options, authenticator: authenticator,
            metrics: metrics, logger: logger)
        ready(boundPort)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await handler.runGroupExpiry() }
            defer { group.cancelAll() }
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    let address = connection.channel.remoteAddress?.ipAddress ?? "unknown"
                    switch gate.admit(address) {
                    case .admitted(let open):
                        metrics.connections.record(open)
                        group.addTask {
                            await self.serve(connection, from: address, handler: handler)
                            metrics.connections.record(gate.release(address))
                        }
                    case .refused(let reason, let firstForAddress):
                        metrics.refusals[reason.rawValue].increment()
                        if firstForAddress {
                            logger.warning(
                                "refusing Kafka connections from \(address): \(Self.explain(reason, limits)) (logged once per client)",
                                metadata: ["net.peer.ip": "\(address)", "refusal.reason": "\(reason.rawValue)"])
                        }
                        // Through the wrapper, which must be finished before it goes away.
                        try? await connection.executeThenClose { _, _ in }
                    }
                }
            }
        }
    }

    static func explain(_ reason: RefusalReason, _ limits: ListenerLimits) -> String {
        switch reason {
        case .tooManyConnections: "\(limits.maxConnections) connections are open (--max-connections)"
        case .tooManyConnectionsFromAddress: "it has \(limits.maxConnectionsPerAddress) connections open (--max-connections-per-address)"
        case .frameTooLarge: "a request frame exceeded --max-request-bytes \(limits.maxFrameBytes)"
        case .frameDeadline: "a request frame was not whole within --request-deadline \(limits.frameDeadline)"
        case .idle: "the connection was idle for --idle-timeout \(limits.idleTimeout)"
        case .malformedRequest: "it sent a frame that is not a request this broker reads"
        case .tlsHandshake: "its TLS handshake failed"
        case .authentication: "it did not authenticate (SASL)"
        }
    }

    /// Reads requests in order and hands their replies to a writer that sends them in the same
    /// order, each once it is durable: a producer's next request is appended while the
    /// previous one's sync round runs (librdkafka keeps up to 5 in flight), yet nothing is
    /// acknowledged early or out of order. At `maxInFlightRequests` unanswered requests the
    /// reader waits, so the socket's unread bytes push back on the client.
    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, from address: String, handler: WireRequestHandler) async {
        let peer = connection.channel.remoteAddress?.description ?? "?"
        let allocator = connection.channel.allocator
        let window = RequestWindow(capacity: limits.maxInFlightRequests)
        do {
            try await connection.executeThenClose { inbound, outbound in
                let (replies, queue) = AsyncStream<WireRequestHandler.Reply>.makeStream()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    let channel = connection.channel
                    group.addTask {
                        defer { window.close() }
                        do {
                            for await reply in replies {
                                try await reply.ready()
                                if let frame = reply.frame(allocator: allocator) {
                                    try await outbound.write(contentsOf: frame)
                                }
                                window.release()
                            }
                        } catch {
                            // Unsendable or not durable: the client must not wait for an answer.
                            channel.close(promise: nil)
                            throw error
                        }
                    }
                    defer { queue.finish() }
                    var frames = inbound.makeAsyncIterator()
                    let session = ConnectionSession(requiresAuthentication: authenticator != nil)
                    while await window.acquire(), var frame = try await frames.next() {
                        let request = frame.readBytes(length: frame.readableBytes) ?? []
                        queue.yield(try await handler.reply(to: request, peer: peer, session: session))
                        if let why = session.takeFailure() {
                            metrics.refusals[RefusalReason.authentication.rawValue].increment()
                            if gate.isFirst(.authentication, from: address) {
                                logger.warning(
                                    "SASL authentication failed for \(peer): \(why) (further failures from \(address) are counted, not logged)",
                                    metadata: ["net.peer": "\(peer)", "refusal.reason": "\(RefusalReason.authentication.rawValue)"])
                            }
                        }
                    }
                    queue.finish()
                    try await group.waitForAll()
                }
            }
        } catch let error as ChannelError where error == .ioOnClosedChannel || error == .eof {
            logger.debug("Kafka connection closed by the client", metadata: ["net.peer": "\(peer)"])
        } catch let error as WireError {
            // A limit or a bad frame ended it: counted always, logged once per client and kind.
            let reason = RefusalReason(closing: error)
            metrics.refusals[reason.rawValue].increment()
            if gate.isFirst(reason, from: address) {
                logger.warning(
                    "closing Kafka connection from \(peer): \(error) (further ones of this kind from \(address) are counted, not logged)",
                    metadata: ["net.peer": "\(peer)", "refusal.reason": "\(reason.rawValue)"])
            }
        } catch {
            if let why = encryption?.refusal(error) {
                metrics.refusals[RefusalReason.tlsHandshake.rawValue].increment()
                if gate.isFirst(.tlsHandshake, from: address) {
                    logger.warning(
                        "closing Kafka connection from \(peer): TLS handshake failed: \(why) (further ones from \(address) are counted, not logged)",
                        metadata: ["net.peer": "\(peer)", "refusal.reason": "\(RefusalReason.tlsHandshake.rawValue)"])
                }
                return
            }
            logger.notice("closing Kafka connection", metadata: ["net.peer": "\(peer)", "error.message": "\(error)"])
        }
    }
}

/// The listener as a service of a `ServiceGroup` (`fulfillment broker`, `fulfillment run
/// --listen`): it stops on graceful shutdown.
public struct WireListenerService: Service {
    let listener: WireListener
    let ready: @Sendable (Int) -> Void

    /// `ready` runs once the socket is bound, with its port.
    public init(_ listener: WireListener, ready: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.listener = listener
        self.ready = ready
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await listener.run(ready: ready) }
        } catch is CancellationError {
            // Stopped by the group's graceful shutdown: a normal end.
        }
    }
}

/// `ConnectionAdmission` under a lock, shared by the accept loop and the connections' tasks.
final class ConnectionGate: Sendable {
    enum Decision {
        /// With the open count after admitting it.
        case admitted(open: Int)
        case refused(RefusalReason, firstForAddress: Bool)
    }

    private let admission: Mutex<ConnectionAdmission>

    init(limits: ListenerLimits) {
        admission = Mutex(ConnectionAdmission(limits: limits))
    }

    func admit(_ address: String) -> Decision {
        admission.withLock { admission in
            switch admission.admit(address) {
            case .admitted: .admitted(open: admission.open)
            case .refused(let reason, let first): .refused(reason, firstForAddress: first)
            }
        }
    }

    /// Returns the open count after the release.
    func release(_ address: String) -> Int {
        admission.withLock { admission in
            admission.release(address)
            return admission.open
        }
    }

    func isFirst(_ reason: RefusalReason, from address: String) -> Bool {
        admission.withLock { $0.isFirst(reason, from: address) }
    }
}

/// The process's limit on open files (sockets count), raised to the hard limit: Linux's soft
/// default of 1,024 would refuse connections long before `--max-connections`.
enum OpenFileLimit {
    /// The soft limit after raising it.
    static func raiseToHardLimit() -> Int {
        #if os(Linux)
        let files = Int32(RLIMIT_NOFILE.rawValue)
        #else
        let files = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(files, &limit) == 0 else { return 1_024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(files, &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur > UInt(Int.max) ? Int.max : Int(limit.rlim_cur)
    }
}
