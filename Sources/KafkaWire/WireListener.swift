import Broker
import FulfillmentMetrics
import Logging
import Messaging
import NIOCore
import Synchronization
import NIOPosix
import ServiceLifecycle

/// Splits the byte stream into Kafka request frames (a 4-byte big-endian length, then the
/// request). A negative or oversized length closes the connection.
struct KafkaFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maxFrameBytes: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return .needMoreData }
        guard length >= 0, Int(length) <= maxFrameBytes else {
            throw WireError(.tooLarge, "request of \(length) bytes (limit \(maxFrameBytes))")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// The Kafka protocol listener: accepts connections and answers each connection's requests
/// in order; a long-polling Fetch waits on its own connection only.
public struct WireListener: Sendable {
    public let host: String
    public let port: Int
    public let maxRequestBytes: Int
    let broker: EmbeddedBroker
    let advertised: (host: String, port: Int)?
    let options: WireRequestHandler.Options
    let metrics: WireMetrics
    let logger: Logger
    private let openConnections = ConnectionCount()

    /// `advertised` is the address clients are told to connect to (Metadata, FindCoordinator);
    /// by default the one listened on. Set it when listening on 0.0.0.0 or behind a NAT.
    /// Port 0 listens on a free port, which `run` reports and advertises.
    public init(
        broker: EmbeddedBroker, host: String, port: Int, advertised: (host: String, port: Int)? = nil, maxRequestBytes: Int = 100 << 20,
        options: WireRequestHandler.Options = .init(), metrics: WireMetrics = .disabled, logger: Logger
    ) {
        self.metrics = metrics
        self.host = host
        self.port = port
        self.maxRequestBytes = maxRequestBytes
        self.logger = logger
        self.broker = broker
        self.advertised = advertised
        self.options = options
    }

    /// Serves until the task is cancelled; `ready` is called with the port once the socket
    /// listens (the one asked for, or the free one port 0 found).
    public func run(ready: @Sendable (Int) -> Void = { _ in }) async throws {
        let maxBytes = maxRequestBytes
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: maxBytes)))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let boundPort = server.channel.localAddress?.port ?? port
        let handler = WireRequestHandler(
            broker: broker, advertisedHost: advertised?.host ?? host, advertisedPort: advertised?.port ?? boundPort, options: options, metrics: metrics, logger: logger)
        ready(boundPort)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await handler.runGroupExpiry() }
            defer { group.cancelAll() }
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await self.serve(connection, handler: handler) }
                }
            }
        }
    }

    /// Reads requests in order and hands their replies to a writer that sends them in the same
    /// order, each once it is durable: a producer's next request is appended while the
    /// previous one's sync round runs (librdkafka keeps up to 5 in flight), yet nothing is
    /// acknowledged early or out of order.
    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, handler: WireRequestHandler) async {
        let peer = connection.channel.remoteAddress?.description ?? "?"
        let allocator = connection.channel.allocator
        metrics.connections.record(openConnections.change(by: 1))
        defer { metrics.connections.record(openConnections.change(by: -1)) }
        do {
            try await connection.executeThenClose { inbound, outbound in
                let (replies, queue) = AsyncStream<WireRequestHandler.Reply>.makeStream()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    let channel = connection.channel
                    group.addTask {
                        do {
                            for await reply in replies {
                                try await reply.ready()
                                guard let response = reply.bytes else { continue }
                                var buffer = allocator.buffer(capacity: response.count + 4)
                                buffer.writeInteger(Int32(response.count))
                                buffer.writeBytes(response)
                                try await outbound.write(buffer)
                            }
                        } catch {
                            // Unsendable or not durable: the client must not wait for an answer.
                            channel.close(promise: nil)
                            throw error
                        }
                    }
                    defer { queue.finish() }
                    for try await var frame in inbound {
                        let request = frame.readBytes(length: frame.readableBytes) ?? []
                        queue.yield(try await handler.reply(to: request, peer: peer))
                    }
                    queue.finish()
                    try await group.waitForAll()
                }
            }
        } catch let error as ChannelError where error == .ioOnClosedChannel || error == .eof {
            logger.debug("Kafka connection closed by the client", metadata: ["net.peer": "\(peer)"])
        } catch {
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

/// Open connections of one listener.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Returns the count after the change.
    func change(by delta: Int) -> Int { count.add(delta, ordering: .relaxed).newValue }
}
