import Broker
import Dispatcher
import Foundation
import Logging
import Messaging
import TestSupport
import Testing

/// `fulfillment run` as a real child process, killed with SIGKILL mid-way and restarted.
@Suite(.serialized) struct CrashRecoveryTests {
    static func launch(_ arguments: [String], stdout: String, stderr: String? = nil) throws -> Process {
        _ = FileManager.default.createFile(atPath: stdout, contents: nil)
        let process = Process()
        process.executableURL = try fulfillmentExecutable()
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdout))
        if let stderr {
            _ = FileManager.default.createFile(atPath: stderr, contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return process
    }

    @Test func aRunKilledWithSigkillMidWayFinishesEveryOrderAfterARestartAndCheckHolds() async throws {
        let temporary = TemporaryDirectory("saga-crash")
        let directory = temporary.path
        let fast = SagaHarness.repositoryRoot.appendingPathComponent("config/profiles/fast.yaml").path
        let output = directory + ".out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        // Two runs killed at random moments, with the default fault profile so retries,
        // dead letters and compensations are in flight when the kill lands. Each run has
        // more orders than it can finish before the kill, even in a fast debug build.
        for round in 0..<2 {
            let run = try Self.launch(["run", "--http", "off", "--orders", "6000", "--faults", "default", "--data-dir", directory, "--config", fast], stdout: output)
            try await Task.sleep(for: .milliseconds(Int.random(in: 1200...2500) + round * 300))
            kill(run.processIdentifier, SIGKILL)
            run.waitUntilExit()
            #expect(run.terminationReason == .uncaughtSignal, "round \(round): the run was killed, not finished")
        }
        // Restart and drain what is queued: every order ends and the books balance.
        let drain = try Self.launch(["run", "--http", "off", "--drain", "--json", "--data-dir", directory, "--config", fast, "--max-seconds", "120"], stdout: output)
        drain.waitUntilExit()
        let json = try #require(try? Data(contentsOf: URL(fileURLWithPath: output)))
        let summary = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(drain.terminationStatus == 0, "\(String(decoding: json, as: UTF8.self))")
        #expect(summary["in_flight"] as? Int == 0)
        let check = try #require(summary["check"] as? [String: Any])
        #expect(check["ok"] as? Bool == true, "\(check["violations"] ?? "")")
        // Every order the killed runs produced was accepted (or rejected) and is terminal.
        var configuration = EmbeddedBroker.Configuration(dataDirectory: directory)
        configuration.readOnly = true
        let broker = try EmbeddedBroker(configuration: configuration, logger: Logger(label: "check"))
        // VIP orders were produced to orders.priority, the others to orders.
        var produced: Int64 = 0
        for topic in ["orders", "orders.priority"] { produced += try await broker.describeTopic(topic).partitions.reduce(Int64(0)) { $0 + $1.endOffset } }
        let store = try DispatcherStore(location: directory, readOnly: true)
        let terminal = try store.connection.scalar("SELECT COUNT(*) FROM orders WHERE state IN ('completed','compensated','manual_review')") ?? 0
        let submitted = try store.intake.scalar("SELECT COUNT(*) FROM submitted") ?? 0
        #expect(produced > 0)
        #expect(submitted == produced, "every produced order was taken in once")
        #expect(terminal == submitted, "\(submitted - terminal) orders not terminal")
        #expect(try store.intake.scalar("SELECT COUNT(*) FROM rejections") == 0)
        // No order was charged twice, even though the kills interrupted charges mid-way.
        let ledger = try StoreConnectionForTests.open(directory + "/gateway.sqlite")
        #expect(try ledger.scalar("SELECT COUNT(*) FROM (SELECT order_id FROM ledger WHERE kind = 'charge' GROUP BY order_id HAVING COUNT(*) > 1)") == 0)
    }
}

import StoreDatabase

enum StoreConnectionForTests {
    static func open(_ path: String) throws -> StoreConnection { try StoreConnection(path: path, readOnly: true) }
}
