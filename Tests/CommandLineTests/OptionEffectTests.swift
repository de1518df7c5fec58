import Foundation
import Testing
import TestSupport

/// Every option a command parses changes what it does (or the command does not parse it):
/// one check per command, through the real executable.
@Suite(.serialized) struct OptionEffectTests {
    let root = NSTemporaryDirectory() + "options-\(UUID().uuidString.prefix(8))"

    func path(_ name: String) -> String { root + "/" + name }

    func topics(_ dataDir: String) throws -> [[String: Any]] {
        let listed = try runFulfillment(["topics", "list", "--json", "--data-dir", dataDir])
        return try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]], "\(listed.stderr)")
    }

    func records(_ topic: String, in topics: [[String: Any]]) -> Int {
        guard let entry = topics.first(where: { ($0["spec"] as? [String: Any])?["name"] as? String == topic }),
              let partitions = entry["partitions"] as? [[String: Any]] else { return -1 }
        return partitions.reduce(0) { $0 + (($1["end_offset"] as? Int ?? $1["endOffset"] as? Int ?? 0) - ($1["begin_offset"] as? Int ?? $1["beginOffset"] as? Int ?? 0)) }
    }

    func partitions(_ topic: String, in topics: [[String: Any]]) -> Int {
        (topics.first { ($0["spec"] as? [String: Any])?["name"] as? String == topic }?["partitions"] as? [Any])?.count ?? -1
    }

    @Test func runStoresWhereStoreSaysAndFailsAtStartOnAnUnreachablePostgres() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let unreachable = try runFulfillment(["run", "--http", "off", "--orders", "5", "--data-dir", path("pg-down"), "--store", "postgres://nobody@127.0.0.1:1/x"])
        #expect(unreachable.status == 2)
        #expect(unreachable.stderr.contains("127.0.0.1") && unreachable.stderr.contains("cannot connect to PostgreSQL"), "\(unreachable.stderr)")
        #expect(!FileManager.default.fileExists(atPath: path("pg-down") + "/dispatcher.sqlite"), "fell back to SQLite")

        let elsewhere = try runFulfillment(["run", "--http", "off", "--orders", "20", "--data-dir", path("data"), "--store", "sqlite:" + path("stores")])
        #expect(elsewhere.exitedCleanly, "\(elsewhere.stderr)")
        #expect(FileManager.default.fileExists(atPath: path("stores") + "/dispatcher.sqlite"))
        #expect(!FileManager.default.fileExists(atPath: path("data") + "/dispatcher.sqlite"))
        // order and check read the stores where --store says, and say so when they are not there.
        #expect(try runFulfillment(["check", "--data-dir", path("data"), "--store", "sqlite:" + path("stores")]).exitedCleanly)
        #expect(try runFulfillment(["check", "--data-dir", path("data")]).status == 2)

        // The same stores with another (fresh) data directory: refused at start, by name.
        let foreign = try runFulfillment(["run", "--http", "off", "--orders", "5", "--data-dir", path("other-data"), "--store", "sqlite:" + path("stores")])
        #expect(foreign.status == 2, "\(foreign.stderr)")
        #expect(foreign.stderr.contains("were made with another log") && foreign.stderr.contains(path("stores")), "\(foreign.stderr)")

        if ProcessInfo.processInfo.environment["FULFILLMENT_TEST_POSTGRES"] != nil {
            // A database of its own: the server is shared by every test and every run.
            let postgres = try StoreBackend.postgres.freshLocation(directory: path("unused"))
            let onPostgres = try runFulfillment(["run", "--http", "off", "--orders", "20", "--json", "--data-dir", path("pg-data"), "--store", postgres])
            #expect(onPostgres.exitedCleanly, "\(onPostgres.stderr)")
            #expect(!FileManager.default.fileExists(atPath: path("pg-data") + "/dispatcher.sqlite"), "run --store postgres:// must not use SQLite")
            #expect(try runFulfillment(["check", "--store", postgres]).exitedCleanly)
        }
    }

    /// Another process on the `--http` port: `run` stops at start with which address and what
    /// to do, not NIO's "bind(descriptor:ptr:bytes:)".
    @Test func aTakenHTTPPortIsSaidPlainly() throws {
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(holder >= 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, length) == 0 && listen(holder, 1) == 0 && getsockname(holder, $0, &length) == 0 }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let taken = try runFulfillment(["run", "--orders", "1", "--data-dir", path("taken"), "--http", "127.0.0.1:\(port)"], limit: .seconds(60))
        #expect(taken.status == 2, "\(taken.stderr)")
        #expect(taken.stderr.contains("cannot serve HTTP on 127.0.0.1:\(port): the address is in use"), "\(taken.stderr)")
        #expect(taken.stderr.contains("--http off"), "\(taken.stderr)")
    }

    @Test func runDoesNotAcceptOptionsItWouldIgnore() throws {
        for option in [["--brokers", "127.0.0.1:9092"], ["-X", "a=b"], ["--kafka-config", "x"]] {
            let refused = try runFulfillment(["run", "--http", "off", "--orders", "1", "--data-dir", path("never")] + option)
            #expect(refused.status == 2, "\(option): \(refused.stderr)")
            #expect(refused.stderr.contains("Unknown option"), "\(refused.stderr)")
        }
        for command in [["graph"], ["explain"]] {
            #expect(try runFulfillment(command + ["--data-dir", path("never")]).status == 2, "\(command) parses --data-dir it has no use for")
        }
        #expect(!FileManager.default.fileExists(atPath: path("never")))
    }

    @Test func produceAndTopicsWorkOnTheDataDirectoryNamed() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try runFulfillment(["produce", "--generate", "7", "--data-dir", path("a")]).exitedCleanly)
        #expect(try runFulfillment(["produce", "--generate", "3", "--data-dir", path("b")]).exitedCleanly)
        // VIP orders (5 % of generated ones) go to orders.priority.
        let a = try topics(path("a")), b = try topics(path("b"))
        #expect(records("orders", in: a) + records("orders.priority", in: a) == 7)
        #expect(records("orders", in: b) + records("orders.priority", in: b) == 3)
        // --partitions is honoured by --saga for the topics it creates.
        let created = try runFulfillment(["topics", "create", "--saga", "--partitions", "3", "--data-dir", path("c")])
        #expect(created.exitedCleanly, "\(created.stderr)")
        #expect(partitions("payment.requested", in: try topics(path("c"))) == 3)
        // --delay-seconds is for one topic, not the saga's.
        #expect(try runFulfillment(["topics", "create", "--saga", "--delay-seconds", "2", "--data-dir", path("c")]).status == 2)
        // --timeout is for a cluster.
        #expect(try runFulfillment(["stats", "--timeout", "5", "--data-dir", path("a")]).status == 2)
    }

    @Test func graphFormatAndExplainConfigChangeTheOutput() throws {
        let mermaid = try runFulfillment(["graph"]).output
        let dot = try runFulfillment(["graph", "--format", "dot"]).output
        #expect(mermaid != dot && dot.contains("digraph"))
        let profile = SagaRepository.root.appendingPathComponent("config/profiles/fast.yaml").path
        #expect(try runFulfillment(["explain"]).output != (try runFulfillment(["explain", "--config", profile]).output))
    }

    /// A Kafka cluster where the operator made `orders` with 3 partitions: the saga adopts it,
    /// creates the rest with --partitions, and produces.
    @Test func anExistingTopicWithItsOwnPartitionCountIsAdopted() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let port = freeLoopbackPort()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let broker = try launchFulfillment(["broker", "--listen", "127.0.0.1:\(port)", "--data-dir", path("cluster")], stdout: path("broker.out"), stderr: path("broker.err"))
        defer {
            broker.terminate()
            broker.waitUntilExit()
        }
        try await Loopback.waitUntilListening(port: port)
        let cluster = ["--brokers", "127.0.0.1:\(port)"]
        #expect(try runFulfillment(["topics", "create", "orders", "--partitions", "3"] + cluster).exitedCleanly)
        let saga = try runFulfillment(["topics", "create", "--saga", "--partitions", "5", "--log-level", "notice"] + cluster)
        #expect(saga.exitedCleanly, "\(saga.stderr)")
        #expect(saga.stderr.contains("adopting an existing topic"), "\(saga.stderr)")
        let produced = try runFulfillment(["produce", "--generate", "12"] + cluster)
        #expect(produced.exitedCleanly, "\(produced.stderr)")
        let listed = try runFulfillment(["topics", "list", "--json"] + cluster)
        let all = try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]])
        #expect(partitions("orders", in: all) == 3)
        #expect(partitions("payment.requested", in: all) == 5)
        // VIP orders (5 % of generated ones) go to orders.priority.
        #expect(records("orders", in: all) + records("orders.priority", in: all) == 12)
    }

    /// Commands started before their cluster wait for it (up to --timeout), then work; with
    /// no cluster at all they give up naming the brokers they tried.
    @Test func aClusterThatComesUpLateIsWaitedFor() async throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let port = freeLoopbackPort()
        let cluster = ["--brokers", "127.0.0.1:\(port)"]
        let nobody = try runFulfillment(["produce", "--generate", "1", "--timeout", "2"] + cluster)
        #expect(nobody.status == 2)
        #expect(nobody.stderr.contains("127.0.0.1:\(port)") && nobody.stderr.contains("gave up"), "\(nobody.stderr)")

        let producer = try launchFulfillment(["produce", "--generate", "25", "--timeout", "60"] + cluster, stdout: path("produce.out"), stderr: path("produce.err"))
        try await Task.sleep(for: .seconds(3))
        #expect(producer.isRunning, "produce must wait for the cluster, not fail")
        let broker = try launchFulfillment(["broker", "--listen", "127.0.0.1:\(port)", "--data-dir", path("late")], stdout: path("broker.out"), stderr: path("broker.err"))
        defer {
            broker.terminate()
            broker.waitUntilExit()
        }
        producer.waitUntilExit()
        let said = (try? String(contentsOfFile: path("produce.err"), encoding: .utf8)) ?? ""
        #expect(producer.terminationStatus == 0, "\(said)")
        #expect(said.contains("waiting for the Kafka cluster at 127.0.0.1:\(port)"), "\(said)")
        let listed = try runFulfillment(["topics", "list", "--json"] + cluster)
        let all = try #require(try JSONSerialization.jsonObject(with: listed.stdout) as? [[String: Any]])
        #expect(records("orders", in: all) + records("orders.priority", in: all) == 25)
    }
}

enum SagaRepository {
    /// The package root (config/ lives there).
    static var root: URL {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }
}

/// The Kafka listener's exposure flag and limits, and the mock cluster's fault options.
@Suite(.serialized) struct ListenerAndMockOptionTests {
    @Test func aListenerOtherMachinesCanReachNeedsAllowAnonymous() async throws {
        let directory = TemporaryDirectory("listen-exposure")
        let refused = try runFulfillment(["broker", "--data-dir", directory.path + "/a", "--listen", "0.0.0.0:0"], limit: .seconds(30))
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("--allow-anonymous") && refused.stderr.contains("would be anonymous"), "\(refused.stderr)")
        let run = try runFulfillment(["run", "--orders", "1", "--data-dir", directory.path + "/b", "--listen", "0.0.0.0:0", "--http", "off"], limit: .seconds(30))
        #expect(run.status == 2 && run.stderr.contains("--allow-anonymous"), "\(run.stderr)")

        let log = directory.path + "/allowed.err"
        let allowed = try launchFulfillment(
            ["broker", "--data-dir", directory.path + "/c", "--listen", "0.0.0.0:0", "--advertise", "127.0.0.1:9092", "--allow-anonymous"],
            stdout: directory.path + "/allowed.out", stderr: log)
        defer { if allowed.isRunning { allowed.terminate(); allowed.waitUntilExit() } }
        let text = try await logText(log, once: "Kafka protocol on 0.0.0.0:")
        #expect(text.contains("Kafka protocol on 0.0.0.0:"), "with --allow-anonymous it listens: \(text)")
    }

    @Test func unusableLimitsAreRefusedByName() throws {
        let directory = TemporaryDirectory("listen-limits")
        for (option, value, named) in [
            ("--max-connections", "0", "max connections"), ("--max-request-bytes", "100", "request bytes"),
            ("--request-deadline", "0", "--request-deadline"), ("--idle-timeout", "1e300", "--idle-timeout"), ("--max-in-flight", "0", "in-flight"),
        ] {
            let refused = try runFulfillment(["broker", "--data-dir", directory.path, "--listen", "127.0.0.1:0", option, value], limit: .seconds(30))
            #expect(refused.status == 2, "\(option) \(value): \(refused.stderr)")
            #expect(refused.stderr.contains(named), "\(option) \(value): \(refused.stderr)")
        }
    }

    /// `--inject-faults` injects that many, on the schedule `--fault-seed` fixes.
    @Test func kafkaMockInjectsTheSeededFaults() async throws {
        func faults(seed: Int) async throws -> [String] {
            let directory = TemporaryDirectory("mock-faults")
            let log = directory.path + "/mock.err"
            let mock = try launchFulfillment(
                ["kafka-mock", "--inject-faults", "4", "--fault-seed", "\(seed)", "--fault-interval-ms", "50"], stdout: directory.path + "/mock.out", stderr: log)
            defer { if mock.isRunning { mock.terminate(); mock.waitUntilExit() } }
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("faults done") {
                try await Task.sleep(for: .milliseconds(100))
            }
            let text = try String(contentsOfFile: log, encoding: .utf8)
            #expect(text.contains("faults done: 4"), "\(text)")
            return text.split(separator: "\n").filter { $0.hasPrefix("fault ") }.map(String.init)
        }
        let first = try await faults(seed: 5)
        #expect(first.count == 4)
        #expect(try await faults(seed: 5) == first, "the same seed, the same faults")
        #expect(try await faults(seed: 6) != first)
    }
}
