import Broker
import Dispatch
import Foundation
import KafkaWire
import Logging
import Messaging

/// One embedded broker for the whole fuzzing run, in a fresh temporary directory, with a
/// topic to produce to and fetch from (so inputs that name it go deep).
private let handler: WireRequestHandler = {
    let directory = NSTemporaryDirectory() + "fuzz-wire-\(getpid())"
    try? FileManager.default.removeItem(atPath: directory)
    var configuration = EmbeddedBroker.Configuration(dataDirectory: directory)
    configuration.fsync = .never
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    let broker = try! EmbeddedBroker(configuration: configuration, logger: logger)
    let ready = DispatchSemaphore(value: 0)
    Task {
        try? await broker.createTopic(TopicSpec(name: "t", partitions: 2))
        ready.signal()
    }
    ready.wait()
    var options = WireRequestHandler.Options()
    options.maxFetchWaitMilliseconds = 0
    return WireRequestHandler(broker: broker, advertisedHost: "127.0.0.1", advertisedPort: 9092, options: options, logger: logger)
}()

/// One input: a request frame (without its length prefix). The handler answers it or
/// refuses it (the connection would close); it never traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireRequests(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let frame = Array(UnsafeBufferPointer(start: data, count: size))
    let done = DispatchSemaphore(value: 0)
    let handler = handler
    Task {
        _ = try? await handler.respond(to: frame, peer: "fuzz")
        done.signal()
    }
    done.wait()
    return 0
}
