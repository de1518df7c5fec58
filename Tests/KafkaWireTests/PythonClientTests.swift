import Foundation
import Testing
import TestSupport

/// Kafka clients nobody here wrote, from PyPI, against `fulfillment broker` as a real process:
/// confluent-kafka (a newer librdkafka than Debian's) and kafka-python (pure Python, its own
/// protocol code). The scripts are in Clients/; `make test` installs the packages.
@Suite(.serialized, .timeLimit(.minutes(5))) struct PythonClientTests {
    static let clients = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Clients")

    /// Runs a client script; returns its exit status and everything it printed.
    static func python(_ script: String, _ arguments: [String]) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", clients.appendingPathComponent(script).path] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// `fulfillment broker` on a free port it picks (port 0), or on `port` again after a
    /// restart; returns once it listens, with its port.
    static func startBroker(_ dir: String, port: Int = 0) async throws -> (Process, Int) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return try await launchBroker(dataDirectory: dir, port: port, log: dir + "/broker-\(UUID().uuidString.prefix(4)).log")
    }

    static func stop(_ process: Process, signal: Int32 = SIGTERM) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }

    func runSuite(_ script: String) async throws {
        let temporary = TemporaryDirectory("py")
        let dir = temporary.path
        let (broker, port) = try await Self.startBroker(dir)
        defer { Self.stop(broker) }
        let (status, output) = try await Self.python(script, ["127.0.0.1:\(port)"])
        #expect(status == 0, "\(script) failed:\n\(output)")
        #expect(output.hasSuffix("OK\n"), "\(output)")
    }

    @Test func confluentKafkaProducesConsumesAsAGroupRebalancesAndAdministers() async throws {
        try await runSuite("confluent_kafka_suite.py")
    }

    @Test func kafkaPythonProducesConsumesAsAGroupRebalancesAndAdministers() async throws {
        try await runSuite("kafka_python_suite.py")
    }

    /// The broker is killed with SIGKILL while an idempotent producer is mid-run, and restarted
    /// on the same port: the client carries on; every acknowledged record is there exactly
    /// once; a group's committed offsets survive another restart.
    @Test func aBrokerKilledMidRunKeepsEveryAcknowledgedRecordAndCommittedOffset() async throws {
        let temporary = TemporaryDirectory("py-restart")
        let dir = temporary.path
        let binary = try fulfillmentExecutable().path
        #expect(try KcatCompatibilityTests.run(binary, ["topics", "create", "restart", "--partitions", "4", "--data-dir", dir + "/data"]).0 == 0)
        var (broker, port) = try await Self.startBroker(dir + "/data")
        let bootstrap = "127.0.0.1:\(port)"
        defer { Self.stop(broker) }

        let acked = dir + "/acked.txt"
        async let produced = Self.python("restart_client.py", ["produce", bootstrap, "restart", "40000", acked])
        try await Task.sleep(for: .seconds(3))
        Self.stop(broker, signal: SIGKILL)
        #expect(broker.terminationReason == .uncaughtSignal)
        try await Task.sleep(for: .seconds(1))
        (broker, port) = try await Self.startBroker(dir + "/data", port: port)
        let (producedStatus, producedOutput) = try await produced
        #expect(producedStatus == 0, "\(producedOutput)")

        let (consumedStatus, consumedOutput) = try await Self.python("restart_client.py", ["consume", bootstrap, "restart", "g-restart", acked])
        #expect(consumedStatus == 0, "\(consumedOutput)")

        Self.stop(broker)
        (broker, port) = try await Self.startBroker(dir + "/data", port: port)
        let (committedStatus, committedOutput) = try await Self.python("restart_client.py", ["committed", bootstrap, "restart", "g-restart"])
        #expect(committedStatus == 0, "\(committedOutput)")
    }

    /// The listener's limits against hostile clients (Clients/listener_limits_suite.py): 2,000
    /// connections at once from one address leave the broker serving kcat from another and
    /// write one log line; a byte-a-second sender is cut off at the request deadline while
    /// whole requests a second apart are not; an idle connection is closed; an oversized frame
    /// closes its connection; 50 pipelined requests past the in-flight cap are all answered.
    @Test func listenerLimitsHoldAgainstAFloodASlowSenderAndIdleClients() async throws {
        let temporary = TemporaryDirectory("py-limits")
        let dir = temporary.path
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        let log = dir + "/broker.log"
        let (broker, port) = try await launchBroker(
            dataDirectory: dir + "/data", log: log,
            extra: [
                "--request-deadline", "2", "--idle-timeout", "6", "--max-request-bytes", "16384", "--max-in-flight", "2",
                "--auto-create-topics", "1", "--http", "127.0.0.1:0",
            ])
        defer { Self.stop(broker) }
        var http: Substring?
        for _ in 0..<100 where http == nil {
            let text = try String(contentsOfFile: log, encoding: .utf8)
            http = text.range(of: "HTTP on http://127.0.0.1:").map { text[$0.upperBound...].prefix { $0.isNumber } }
            if http == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let metricsPort = try #require(http, "the broker did not say where its HTTP listener is")
        let (status, output) = try await Self.python("listener_limits_suite.py", ["\(port)", log, "http://127.0.0.1:\(metricsPort)/metrics"])
        #expect(status == 0, "listener_limits_suite.py failed:\n\(output)\nbroker log:\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        #expect(output.hasSuffix("OK\n"), "\(output)")
    }
}
