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

    /// The lane of a line, read off its JSON without validating it (the intake does that,
    /// and promotes a VIP order found on `orders` at once): tier `vip`, or the items' total
    /// (or an explicit `amount`) above the threshold.
    static func lane(of document: JSONValue, vipAbove threshold: Double) -> Priority {
        if case .string("vip")? = document["customer_tier"] { return .vip }
        var total = 0.0
        if case .number(let amount)? = document["amount"] {
            total = amount
        } else if case .array(let items)? = document["items"] {
            for item in items {
                if case .number(let quantity)? = item["quantity"], case .number(let price)? = item["unit_price"] { total += quantity * price }
            }
        }
        return total > threshold ? .vip : .standard
    }

    /// `produced 120000/1000000 lines · 310000 lines/s · ETA 0:03`.
    static func progressLine(sent: Int, total: Int, since started: ContinuousClock.Instant) -> String {
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        let elapsed = max(0.001, Double(seconds) + Double(attoseconds) / 1e18)
        let rate = Double(sent) / elapsed
        let left = rate > 0 ? Int((Double(total - sent) / rate).rounded()) : 0
        return "produced \(sent)/\(total) lines · \(Int(rate)) lines/s · ETA \(left / 60):\(String(format: "%02d", left % 60))"
    }

    func run() async throws {
        try await reportingFailures {
            let configuration = try saga.loadConfiguration()
            let (broker, _) = try await saga.openForWriting()
            defer { broker.shutdown() }
            try await SagaTopology.create(configuration, on: broker)
            let topics = configuration.topics
            if let generate {
                var generator = LoadGenerator(count: generate, vipShare: vipShare, rate: nil, skuCount: configuration.skuCount)
                generator.vipThreshold = configuration.vipAmountThreshold
                let progress = ProgressLine(enabled: isatty(STDERR_FILENO) != 0)
                let started = ContinuousClock.now
                try await generator.produce(to: broker, topics: topics) { sent in
                    if sent % 5000 == 0 || sent == generate { progress.show(Self.progressLine(sent: sent, total: generate, since: started)) }
                }
                progress.finish()
                print("produced \(generate) orders (ids o-\(generator.runTag)-0 ... o-\(generator.runTag)-\(generate - 1)) to \(topics.orders) and \(topics.ordersPriority) (VIP)")
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
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            // On a terminal: lines sent, rate and ETA, rewritten in place; piped: quiet.
            let progress = ProgressLine(enabled: isatty(STDERR_FILENO) != 0)
            let started = ContinuousClock.now
            var shown = started
            for line in lines {
                let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
                guard let first = line.firstIndex(where: { !isSpace($0) }), let last = line.lastIndex(where: { !isSpace($0) }) else { continue }
                let bytes = Array(line[first...last])
                var orderID: String?
                var lane = Priority.standard
                if let document = try? JSONValue.parse(bytes) {
                    if case .string(let id)? = document["order_id"] { orderID = id }
                    lane = Self.lane(of: document, vipAbove: configuration.vipAmountThreshold)
                }
                batch.append(ProducerRecord(topic: topics.orders(lane), key: orderID.map { Array($0.utf8) }, value: bytes))
                batchBytes += bytes.count
                // Batches stay well under the broker's 16 MiB per partition, whatever the lines' size.
                if batch.count >= 500 || batchBytes >= 4 << 20 {
                    _ = try await broker.produce(batch)
                    count += batch.count
                    batch.removeAll()
                    batchBytes = 0
                    if progress.enabled, ContinuousClock.now - shown >= .milliseconds(200) {
                        shown = .now
                        progress.show(Self.progressLine(sent: count, total: lines.count, since: started))
                    }
                }
            }
            if !batch.isEmpty {
                _ = try await broker.produce(batch)
                count += batch.count
            }
            progress.finish()
            print("produced \(count) orders to \(topics.orders) and \(topics.ordersPriority) (VIP); process them with `fulfillment run --drain`")
        }
    }
}
