import Foundation
import Testing
import TestSupport

/// `fulfillment broker` as a real process, spoken to by kcat (Debian's, librdkafka 2.0.2):
/// metadata, produce with keys and headers, consume from the beginning and from an offset,
/// garbage on a socket, a broker restart in between, and consuming as a group.
@Suite(.serialized, .timeLimit(.minutes(3))) struct KcatCompatibilityTests {
    struct KcatError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Runs a program to completion; returns its exit status and standard output.
    @discardableResult
    static func run(_ path: String, _ arguments: [String], input: String? = nil) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let kcat = "/usr/bin/kcat"

    /// `fulfillment broker` on `dir`: on a free port the broker picks (port 0), or on `port`
    /// again after a restart; returns once kcat gets metadata from it.
    func startBroker(_ dir: String, port: Int = 0) async throws -> (Process, Int) {
        let (process, bound) = try await launchBroker(dataDirectory: dir, port: port, log: dir + "/broker-\(UUID().uuidString.prefix(4)).log")
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if try Self.run(Self.kcat, ["-b", "127.0.0.1:\(bound)", "-L", "-m", "2"]).0 == 0 { return (process, bound) }
            try await Task.sleep(for: .milliseconds(200))
        }
        process.terminate()
        throw KcatError(message: "the broker did not answer kcat on port \(bound)")
    }

    @Test func kcatProducesAndConsumesAcrossABrokerRestart() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.kcat), "kcat is installed by `make test` (apt-get install kcat)")
        let temporary = TemporaryDirectory("kcat")
        let dir = temporary.path
        let binary = try fulfillmentExecutable().path
        #expect(try Self.run(binary, ["topics", "create", "orders", "--partitions", "3", "--data-dir", dir]).0 == 0)
        var (broker, port) = try await startBroker(dir)
        let bootstrap = "127.0.0.1:\(port)"
        defer { if broker.isRunning { broker.terminate(); broker.waitUntilExit() } }

        let (_, metadata) = try Self.run(Self.kcat, ["-b", bootstrap, "-L"])
        #expect(metadata.contains("topic \"orders\" with 3 partitions"), "\(metadata)")

        let lines = (0..<20).map { "order-\($0):{\"n\":\($0)}" }.joined(separator: "\n") + "\n"
        let (produced, _) = try Self.run(Self.kcat, ["-b", bootstrap, "-P", "-t", "orders", "-K:", "-H", "source=kcat"], input: lines)
        #expect(produced == 0)

        // Garbage on another connection: that connection is closed, the broker carries on.
        Loopback.sendRaw((0..<300).map { _ in UInt8.random(in: 0...255) }, port: port)
        Loopback.sendRaw([0x7F, 0xFF, 0xFF, 0xFF, 0, 0], port: port)

        func consumeAll() throws -> [String] {
            let (status, out) = try Self.run(Self.kcat, ["-b", bootstrap, "-C", "-t", "orders", "-e", "-q", "-f", "%k=%s|%h\\n"])
            #expect(status == 0)
            return out.split(separator: "\n").map(String.init).sorted()
        }
        let expected = (0..<20).map { "order-\($0)={\"n\":\($0)}|source=kcat" }.sorted()
        #expect(try consumeAll() == expected)

        // Restart: every acknowledged record is still there.
        broker.terminate()
        broker.waitUntilExit()
        (broker, port) = try await startBroker(dir, port: port)
        #expect(try consumeAll() == expected)
        // ListOffsets: the last record of partition 0, read from the end minus one.
        let (_, last) = try Self.run(Self.kcat, ["-b", bootstrap, "-C", "-t", "orders", "-p", "0", "-o", "-1", "-e", "-q", "-f", "%o\\n"])
        let listing = try Self.run(binary, ["topics", "list", "--data-dir", dir, "--json"]).1
        let topics = try #require(try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [[String: Any]])
        let partitions = try #require(topics.first { ($0["spec"] as? [String: Any])?["name"] as? String == "orders" }?["partitions"] as? [[String: Any]])
        let end = try #require(partitions.first { $0["partition"] as? Int == 0 }?["endOffset"] as? Int)
        #expect(end > 0)
        #expect(last.trimmingCharacters(in: .whitespacesAndNewlines) == "\(end - 1)")
    }

    /// kcat's balanced consumer (-G): a group reads everything and commits; after a broker
    /// restart the same group resumes at its committed offsets and sees only what is new.
    @Test func kcatConsumesAsAGroupAndResumesAfterARestart() async throws {
        let temporary = TemporaryDirectory("kcat-group")
        let dir = temporary.path
        let binary = try fulfillmentExecutable().path
        #expect(try Self.run(binary, ["topics", "create", "events", "--partitions", "2", "--data-dir", dir]).0 == 0)
        var (broker, port) = try await startBroker(dir)
        let bootstrap = "127.0.0.1:\(port)"
        defer { if broker.isRunning { broker.terminate(); broker.waitUntilExit() } }

        func produce(_ range: Range<Int>) throws {
            let lines = range.map { "e-\($0):\($0)" }.joined(separator: "\n") + "\n"
            #expect(try Self.run(Self.kcat, ["-b", bootstrap, "-P", "-t", "events", "-K:"], input: lines).0 == 0)
        }
        func consumeAsGroup() throws -> [String] {
            let (status, out) = try Self.run(Self.kcat, ["-b", bootstrap, "-G", "kcat-group", "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", "%k\n", "events"])
            #expect(status == 0)
            return out.split(separator: "\n").map(String.init).sorted()
        }
        try produce(0..<10)
        #expect(try consumeAsGroup() == (0..<10).map { "e-\($0)" }.sorted())
        try produce(10..<15)
        broker.terminate()
        broker.waitUntilExit()
        (broker, port) = try await startBroker(dir, port: port)
        #expect(try consumeAsGroup() == (10..<15).map { "e-\($0)" }.sorted(), "the group resumed at its committed offsets")
    }

    /// `--advertise`: clients are told the address given, not the one listened on.
    @Test func theAdvertisedAddressIsWhatClientsAreTold() async throws {
        let temporary = TemporaryDirectory("kcat-adv")
        let dir = temporary.path
        let port = freeLoopbackPort()
        let broker = Process()
        broker.executableURL = try fulfillmentExecutable()
        broker.arguments = ["broker", "--data-dir", dir, "--listen", "127.0.0.1:\(port)", "--advertise", "localhost:\(port)"]
        broker.standardOutput = FileHandle.nullDevice
        broker.standardError = FileHandle.nullDevice
        try broker.run()
        defer { broker.terminate(); broker.waitUntilExit() }
        var metadata = ""
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            let (status, out) = try Self.run(Self.kcat, ["-b", "127.0.0.1:\(port)", "-L", "-m", "2"])
            if status == 0 { metadata = out; break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(metadata.contains("broker 1 at localhost:\(port)"), "\(metadata)")
    }

    @Test func aRunningSagaIsReachableByKcat() async throws {
        let temporary = TemporaryDirectory("kcat-run")
        let dir = temporary.path
        let fast = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config/profiles/fast.yaml").path
        let port = freeLoopbackPort()
        let run = Process()
        run.executableURL = try fulfillmentExecutable()
        run.arguments = ["run", "--orders", "50000", "--config", fast, "--data-dir", dir, "--listen", "127.0.0.1:\(port)"]
        run.standardOutput = FileHandle.nullDevice
        run.standardError = FileHandle.nullDevice
        try run.run()
        defer { if run.isRunning { run.terminate(); run.waitUntilExit() } }
        // Completed orders appear on `orders.completed` while the saga runs.
        var completed: [String] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while completed.isEmpty, ContinuousClock.now < deadline, run.isRunning {
            let (_, out) = try Self.run(Self.kcat, ["-b", "127.0.0.1:\(port)", "-C", "-t", "orders.completed", "-o", "beginning", "-c", "3", "-q", "-f", "%k %h\\n", "-m", "5"])
            completed = out.split(separator: "\n").map(String.init)
            if completed.isEmpty { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(completed.count == 3, "kcat read completed orders from the running saga")
        #expect(completed.allSatisfy { $0.hasPrefix("o-") && $0.contains("step=completed") })
        kill(run.processIdentifier, SIGINT)
        run.waitUntilExit()
    }
}
