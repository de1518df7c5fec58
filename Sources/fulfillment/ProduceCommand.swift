import ArgumentParser
import Foundation
import Messaging
import SagaAssembly
import SagaDomain

struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Put orders on the `orders` topic: from a file or stdin (one JSON order per line), or generated.",
        discussion: """
            Each line is sent as it is, keyed by its order_id when it has one, so invalid orders reach the dispatcher and are rejected with a reason on `orders.rejected` (nothing is validated here). Needs the data directory's owner stopped; then `fulfillment run --drain` processes what was queued.
            """
    )

    @OptionGroup var saga: SagaOptions
    @Argument(help: "NDJSON file of orders; '-' or nothing reads stdin.") var file: String?
    @Option(help: "Generate this many synthetic orders instead of reading input.") var generate: Int?
    @Option(help: "Share of generated orders from VIP customers (0-1).") var vipShare: Double = 0.05

    func validate() throws {
        if let generate, generate <= 0 { throw ValidationError("--generate must be positive") }
        if generate != nil && file != nil { throw ValidationError("use either a file or --generate, not both") }
    }

    func run() async throws {
        try await reportingFailures {
            let configuration = try saga.loadConfiguration()
            let (broker, _) = try await saga.openForWriting()
            defer { broker.shutdown() }
            try await SagaTopology.create(configuration, on: broker)
            let topics = configuration.topics
            if let generate {
                let generator = LoadGenerator(count: generate, vipShare: vipShare, rate: nil, skuCount: configuration.skuCount)
                try await generator.produce(to: broker, topics: topics)
                print("produced \(generate) orders (ids o-\(generator.runTag)-0 ... o-\(generator.runTag)-\(generate - 1)) to \(topics.orders)")
                return
            }
            let handle: FileHandle
            if let file, file != "-" {
                guard let opened = FileHandle(forReadingAtPath: file) else { throw CommandFailure(message: "cannot read \(file)") }
                handle = opened
            } else {
                handle = FileHandle.standardInput
            }
            var count = 0
            var batch: [ProducerRecord] = []
            var batchBytes = 0
            // Lines are sent byte for byte (invalid UTF-8 included: the dispatcher rejects it
            // with a reason); only surrounding spaces, tabs and a CR are trimmed.
            let data = [UInt8](handle.readDataToEndOfFile())
            for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
                let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                guard let first = line.firstIndex(where: { !isSpace($0) }), let last = line.lastIndex(where: { !isSpace($0) }) else { continue }
                let bytes = Array(line[first...last])
                var orderID: String?
                if let document = try? JSONValue.parse(bytes), case .string(let id)? = document["order_id"] { orderID = id }
                batch.append(ProducerRecord(topic: topics.orders, key: orderID.map { Array($0.utf8) }, value: bytes))
                batchBytes += bytes.count
                // Batches stay well under the broker's 16 MiB per partition, whatever the lines' size.
                if batch.count >= 500 || batchBytes >= 4 << 20 {
                    _ = try await broker.produce(batch)
                    count += batch.count
                    batch.removeAll()
                    batchBytes = 0
                }
            }
            if !batch.isEmpty {
                _ = try await broker.produce(batch)
                count += batch.count
            }
            print("produced \(count) orders to \(topics.orders); process them with `fulfillment run --drain`")
        }
    }
}
