import ArgumentParser
import Broker
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

    /// `produced 120000/1000000 lines · 310000 lines/s · ETA 0:03`; reading a file, the share
    /// and the ETA come from the bytes read (the line count is known only at the end).
    static func progressLine(sent: Int, total: Int?, done fraction: Double? = nil, since started: ContinuousClock.Instant) -> String {
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        let elapsed = max(0.001, Double(seconds) + Double(attoseconds) / 1e18)
        let rate = Double(sent) / elapsed
        var line = "produced \(sent)"
        var left: Int?
        if let total {
            line += "/\(total) lines"
            left = rate > 0 ? Int((Double(total - sent) / rate).rounded()) : nil
        } else {
            line += " lines"
            if let fraction, fraction > 0 {
                line += " (\(Int(fraction * 100)) %)"
                left = Int((elapsed * (1 - fraction) / fraction).rounded())
            }
        }
        line += " · \(Int(rate)) lines/s"
        if let left { line += " · ETA \(left / 60):\(String(format: "%02d", left % 60))" }
        return line
    }

    /// What `lane(of:)` and the key read; the rest of a line is checked, not built.
    static let laneMembers: Set<String> = ["order_id", "customer_tier", "amount", "items"]

    /// Each line sent byte for byte (invalid UTF-8 included: the dispatcher rejects it with
    /// a reason), keyed by its order_id when it parses, on the lane it names.
    static func records(_ chunk: [UInt8], _ lines: ArraySlice<Range<Int>>, topics: SagaTopics, vipAbove threshold: Double) -> [ProducerRecord] {
        var records: [ProducerRecord] = []
        records.reserveCapacity(lines.count)
        for range in lines {
            let bytes = Array(chunk[range])
            var orderID: String?
            var lane = Priority.standard
            if let document = try? JSONValue.parse(bytes, keepingMembers: Self.laneMembers) {
                if case .string(let id)? = document["order_id"] { orderID = id }
                lane = Self.lane(of: document, vipAbove: threshold)
            }
            records.append(ProducerRecord(topic: topics.orders(lane), key: orderID.map { Array($0.utf8) }, value: bytes))
        }
        return records
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
            let input: LineChunks
            if let file, file != "-" {
                guard let opened = LineChunks(path: file) else { throw CommandFailure(message: "cannot read \(file): \(String(cString: strerror(errno)))") }
                input = opened
            } else {
                input = LineChunks(descriptor: STDIN_FILENO)
            }
            defer { input.close() }
            var sender = BatchSender(broker: broker)
            // On a terminal: lines sent, rate and ETA, rewritten in place; piped: quiet.
            let progress = ProgressLine(enabled: isatty(STDERR_FILENO) != 0)
            let started = ContinuousClock.now
            var shown = started
            let threshold = configuration.vipAmountThreshold
            do {
                while let chunk = try input.next() {
                    // Lines are read on both cores, in two halves, and sent in input order.
                    let lines = LineChunks.lineRanges(in: chunk)
                    let middle = lines.count / 2
                    async let firstHalf = Self.records(chunk, lines[..<middle], topics: topics, vipAbove: threshold)
                    let secondHalf = Self.records(chunk, lines[middle...], topics: topics, vipAbove: threshold)
                    let batch = await firstHalf + secondHalf
                    // One batch per chunk: 4 MiB of lines (plus one line longer than that),
                    // well under the broker's 16 MiB per partition.
                    try await sender.send(batch)
                    if progress.enabled, ContinuousClock.now - shown >= .milliseconds(200) {
                        shown = .now
                        progress.show(Self.progressLine(sent: sender.sent, total: nil, done: input.fractionRead, since: started))
                    }
                }
                try await sender.finish()
            } catch {
                progress.finish()
                throw CommandFailure(message: "\(error)\n\(sender.acknowledged) lines were produced and acknowledged before this; the rest were not (or not known to be) produced.")
            }
            let count = sender.acknowledged
            progress.finish()
            print("produced \(count) orders to \(topics.orders) and \(topics.ordersPriority) (VIP); process them with `fulfillment run --drain`")
        }
    }
}

/// Sends batches in input order. On the embedded broker the next batch is appended while
/// earlier ones sync (up to `depth` awaiting their fsync), so a bulk load does not pay one
/// fsync round per batch; elsewhere each batch is produced and acknowledged in turn.
struct BatchSender {
    let broker: any MessageBroker
    let embedded: EmbeddedBroker?
    let depth: Int
    private var pending: [(count: Int, durability: EmbeddedBroker.PendingDurability)] = []
    /// Lines handed to the broker; `acknowledged` of them are durable.
    private(set) var sent = 0
    private(set) var acknowledged = 0

    init(broker: any MessageBroker, depth: Int = 8) {
        self.broker = broker
        self.embedded = broker as? EmbeddedBroker
        self.depth = depth
    }

    mutating func send(_ batch: [ProducerRecord]) async throws {
        guard !batch.isEmpty else { return }
        sent += batch.count
        guard let embedded else {
            _ = try await broker.produce(batch)
            acknowledged += batch.count
            return
        }
        pending.append((batch.count, try embedded.append(batch).durability))
        if pending.count > depth { try await settleOldest() }
    }

    mutating func finish() async throws {
        while !pending.isEmpty { try await settleOldest() }
    }

    private mutating func settleOldest() async throws {
        let oldest = pending.removeFirst()
        try await oldest.durability.wait()
        acknowledged += oldest.count
    }
}

/// NDJSON read in chunks that end on a line boundary, so a file of any size streams through
/// in bounded memory (a line longer than a chunk is carried until its end is read).
final class LineChunks {
    private let descriptor: Int32
    private let owned: Bool
    private var carry: [UInt8] = []
    private var finished = false
    private let totalBytes: Int?
    private var readBytes = 0
    /// Bytes read at a time: 4 MiB, so a batch per chunk stays well under the broker's limit.
    let chunkSize: Int

    init(descriptor: Int32, chunkSize: Int = 4 << 20) {
        self.descriptor = descriptor
        self.chunkSize = chunkSize
        self.owned = false
        self.totalBytes = Self.regularFileSize(descriptor)
    }

    init?(path: String, chunkSize: Int = 4 << 20) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        self.descriptor = descriptor
        self.chunkSize = chunkSize
        self.owned = true
        self.totalBytes = Self.regularFileSize(descriptor)
    }

    func close() { if owned { _ = Glibc.close(descriptor) } }

    /// The share of a regular file read so far; nil for a pipe or a terminal.
    var fractionRead: Double? { totalBytes.map { $0 > 0 ? min(1, Double(readBytes) / Double($0)) : 1 } }

    private static func regularFileSize(_ descriptor: Int32) -> Int? {
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(info.st_size)
    }

    /// The next run of whole lines (the last line of the input may lack its newline), or nil
    /// at the end of the input.
    func next() throws -> [UInt8]? {
        while !finished {
            // Taken out of `carry`, so a line longer than a chunk grows in place instead of
            // being copied on every read (quadratic on a hostile file of one huge line).
            var buffer = carry
            carry = []
            let kept = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: chunkSize))
            let count = buffer.withUnsafeMutableBytes { raw in
                var got: Int
                repeat { got = read(descriptor, raw.baseAddress! + kept, chunkSize) } while got < 0 && errno == EINTR
                return got
            }
            guard count >= 0 else { throw CommandFailure(message: "reading the input failed: \(String(cString: strerror(errno)))") }
            buffer.removeLast(chunkSize - count)
            readBytes += count
            if count == 0 {
                finished = true
                carry = []
                return buffer.isEmpty ? nil : buffer
            }
            guard let lastNewline = buffer[kept...].lastIndex(of: UInt8(ascii: "\n")) else {
                carry = buffer
                continue
            }
            carry = Array(buffer[(lastNewline + 1)...])
            buffer.removeSubrange((lastNewline + 1)...)
            return buffer
        }
        return nil
    }

    /// The non-blank lines of `chunk`, trimmed of surrounding spaces, tabs and a CR.
    static func lineRanges(in chunk: [UInt8]) -> [Range<Int>] {
        var lines: [Range<Int>] = []
        chunk.withUnsafeBufferPointer { buffer in
            var start = 0
            while start < buffer.count {
                var end = start
                while end < buffer.count, buffer[end] != UInt8(ascii: "\n") { end += 1 }
                var first = start, last = end
                while first < last, isBlank(buffer[first]) { first += 1 }
                while last > first, isBlank(buffer[last - 1]) { last -= 1 }
                if first < last { lines.append(first..<last) }
                start = end + 1
            }
        }
        return lines
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }
}
