import Broker
import Logging
import NIOCore
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
            throw WireError(description: "request of \(length) bytes (limit \(maxFrameBytes))")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// The Kafka protocol listener: accepts connections and answers each connection's requests
/// in order; a long-polling Fetch waits on its own connection only.
public struct KafkaListener: Sendable {
    public let host: String
    public let port: Int
    public let maxRequestBytes: Int
    let handler: KafkaRequestHandler
    let logger: Logger

    /// `advertised` is the address clients are told to connect to (Metadata, FindCoordinator);
    /// by default the one listened on. Set it when listening on 0.0.0.0 or behind a NAT.
    public init(
        broker: EmbeddedBroker, host: String, port: Int, advertised: (host: String, port: Int)? = nil, maxRequestBytes: Int = 100 << 20,
        options: KafkaRequestHandler.Options = .init(), logger: Logger
    ) {
        self.host = host
        self.port = port
        self.maxRequestBytes = maxRequestBytes
        self.logger = logger
        handler = KafkaRequestHandler(
            broker: broker, advertisedHost: advertised?.host ?? host, advertisedPort: advertised?.port ?? port, options: options, logger: logger)
    }

    /// Serves until the task is cancelled; `ready` is called once the socket listens.
    public func run(ready: @Sendable () -> Void = {}) async throws {
        let maxBytes = maxRequestBytes
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: maxBytes)))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        ready()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await handler.runGroupExpiry() }
            defer { group.cancelAll() }
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    /// Reads requests in order and hands their replies to a writer that sends them in the same
    /// order, each once it is durable: a producer's next request is appended while the
    /// previous one's sync round runs (librdkafka keeps up to 5 in flight), yet nothing is
    /// acknowledged early or out of order.
    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let peer = connection.channel.remoteAddress?.description ?? "?"
        let allocator = connection.channel.allocator
        do {
            try await connection.executeThenClose { inbound, outbound in
                let (replies, queue) = AsyncStream<KafkaRequestHandler.Reply>.makeStream()
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
            logger.debug("Kafka connection closed by the client", metadata: ["peer": "\(peer)"])
        } catch {
            logger.notice("closing Kafka connection", metadata: ["peer": "\(peer)", "reason": "\(error)"])
        }
    }
}

/// The listener as a service of a `ServiceGroup` (`fulfillment run --listen`): it stops on
/// graceful shutdown.
public struct KafkaListenerService: Service {
    let listener: KafkaListener

    public init(_ listener: KafkaListener) { self.listener = listener }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await listener.run() }
        } catch is CancellationError {
            // Stopped by the group's graceful shutdown: a normal end.
        }
    }
}
