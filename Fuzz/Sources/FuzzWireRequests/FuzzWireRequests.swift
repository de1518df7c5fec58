import Broker
import Dispatch
import Foundation
import KafkaWire
import Logging
import Messaging

/// One embedded broker for the whole fuzzing run, in a fresh temporary directory, with a
/// topic to produce to and fetch from (so inputs that name it go deep).
private let broker: EmbeddedBroker = {
    let directory = NSTemporaryDirectory() + "fuzz-wire-\(getpid())"
    try? FileManager.default.removeItem(atPath: directory)
    var configuration = EmbeddedBroker.Configuration(dataDirectory: directory)
    configuration.fsync = .never
    let broker = try! EmbeddedBroker(configuration: configuration, logger: quietLogger)
    let ready = DispatchSemaphore(value: 0)
    Task {
        try? await broker.createTopic(TopicSpec(name: "t", partitions: 2))
        ready.signal()
    }
    ready.wait()
    return broker
}()

private let quietLogger: Logger = {
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    return logger
}()

private func freshHandler() -> WireRequestHandler {
    var options = WireRequestHandler.Options()
    options.maxFetchWaitMilliseconds = 0
    return WireRequestHandler(broker: broker, advertisedHost: "127.0.0.1", advertisedPort: 9092, options: options, logger: quietLogger)
}

/// libFuzzer calls in one thread at a time.
nonisolated(unsafe) private var handler = freshHandler()

/// How long one request may take before it counts as parked. A JoinGroup or SyncGroup may
/// rightly wait for other members of its group, up to the rebalance timeout the input names
/// (the listener's periodic expiry ends that wait; nothing runs it here). Such a request is
/// cancelled, as the listener's shutdown cancels it, and answered at once; the handler is
/// then replaced so the next inputs meet empty groups instead of one stuck mid-rebalance.
private let parkedAfter: DispatchTimeInterval = .milliseconds(250)

/// One input: a request frame (without its length prefix). The handler answers it or
/// refuses it (the connection would close); it never traps, and a parked request lets go
/// when cancelled.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireRequests(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let frame = Array(UnsafeBufferPointer(start: data, count: size))
    let done = DispatchSemaphore(value: 0)
    let current = handler
    let work = Task {
        _ = try? await current.respond(to: frame, peer: "fuzz")
        done.signal()
    }
    if done.wait(timeout: .now() + parkedAfter) == .timedOut {
        work.cancel()
        done.wait()
        handler = freshHandler()
    }
    return 0
}
