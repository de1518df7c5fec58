import Dispatcher
import Foundation
import SagaAssembly
import StoreDatabase
import TestSupport
import Testing

/// The saga as separate OS processes on a Kafka cluster (librdkafka's mock cluster, served
/// by `fulfillment kafka-mock` in its own process): a dispatcher, one worker per step and two
/// payment instances sharing the step's store (PostgreSQL, as on several machines). One
/// payment instance is killed with SIGKILL mid-run; its partitions move to the other, and
/// every order still ends, charged at most once.
@Suite(.serialized, .timeLimit(.minutes(5))) struct KafkaScaleOutTests {
    final class Processes {
        var running: [Process] = []
        deinit { stopAll() }

        func launch(_ arguments: [String], log: String) throws -> Process {
            let process = try CrashRecoveryTests.launch(arguments, stdout: log)
            running.append(process)
            return process
        }

        /// SIGTERM to every process, then up to 60 s for them to stop: one that does not is a
        /// failure (a stop must end even when its brokers are gone) and is SIGKILLed.
        func stopAll() {
            for process in running where process.isRunning { kill(process.processIdentifier, SIGTERM) }
            let deadline = ContinuousClock.now + .seconds(60)
            for process in running {
                while process.isRunning && ContinuousClock.now < deadline { usleep(50_000) }
                if process.isRunning {
                    Issue.record("`fulfillment \(process.arguments?.first ?? "?")` did not stop within 60 s of SIGTERM")
                    kill(process.processIdentifier, SIGKILL)
                }
                process.waitUntilExit()
            }
            running.removeAll()
        }
    }

    static func waitForLine(_ path: String, seconds: Double = 20) async throws -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), let line = text.split(separator: "\n").first {
                return String(line)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError(message: "no line on \(path) after \(seconds) s")
    }

    static func terminalCount(_ location: String) -> Int64 {
        guard let store = try? DispatcherStore(location: location, readOnly: true) else { return 0 }
        return (try? store.connection.scalar("SELECT COUNT(*) FROM orders WHERE state IN ('completed','compensated','manual_review')")) ?? 0
    }

    /// Orders parked for a human (a refund that kept failing): terminal for the run, but not
    /// final for `check`, which counts them as in flight.
    static func manualReviewCount(_ location: String) -> Int {
        guard let store = try? DispatcherStore(location: location, readOnly: true) else { return -1 }
        return Int((try? store.connection.scalar("SELECT COUNT(*) FROM orders WHERE state = 'manual_review'")) ?? -1)
    }

    /// The orders that are neither completed nor compensated, with their state and event
    /// history, for a failure message.
    static func unfinished(_ location: String) -> String {
        guard let store = try? DispatcherStore(location: location, readOnly: true) else { return "?" }
        let rows = (try? store.connection.query("SELECT order_id, state FROM orders WHERE state NOT IN ('completed','compensated')") { ($0.text(0), $0.text(1)) }) ?? []
        return rows.map { id, state in
            let history = (try? store.connection.query("SELECT topic, event, step, error_class FROM history WHERE order_id = ? ORDER BY at", [.text(id)]) { row in
                (0..<4).map { row.text($0) }.joined(separator: " ")
            }) ?? []
            return "\(id) \(state): \(history.joined(separator: " | "))"
        }.joined(separator: "; ")
    }

    @Test func separateProcessesFinishEveryOrderWhenAPaymentInstanceIsKilled() async throws {
        let temporary = TemporaryDirectory("saga-kafka")
        let directory = temporary.path
        let fast = SagaHarness.repositoryRoot.appendingPathComponent("config/profiles/fast.yaml").path
        let processes = Processes()
        defer { processes.stopAll() }

        _ = try processes.launch(["kafka-mock", "--config", fast], log: directory + "/mock.out")
        let brokers = try await Self.waitForLine(directory + "/mock.out")
        let stores = try StoreBackend.postgres.freshLocation(directory: directory + "/stores")
        let common = ["--brokers", brokers, "--config", fast, "--store", stores, "--faults", "default", "--state-dir", directory + "/state"]

        let orders = 3000
        let produce = try CrashRecoveryTests.launch(["produce", "--generate", "\(orders)", "--brokers", brokers, "--config", fast], stdout: directory + "/produce.out")
        produce.waitUntilExit()
        #expect(produce.terminationStatus == 0)

        _ = try processes.launch(["dispatcher"] + common, log: directory + "/dispatcher.out")
        try await Task.sleep(for: .seconds(2))
        let doomed = try processes.launch(["worker", "payment"] + common, log: directory + "/payment-1.out")
        _ = try processes.launch(["worker", "payment"] + common, log: directory + "/payment-2.out")
        for step in ["inventory", "shipping", "notification"] {
            _ = try processes.launch(["worker", step] + common, log: directory + "/\(step).out")
        }

        // Kill one payment instance once orders are flowing, while many are still to come.
        let flowing = ContinuousClock.now + .seconds(60)
        while Self.terminalCount(stores) < 200, ContinuousClock.now < flowing { try await Task.sleep(for: .milliseconds(100)) }
        let finishedAtKill = Self.terminalCount(stores)
        kill(doomed.processIdentifier, SIGKILL)
        doomed.waitUntilExit()
        #expect(doomed.terminationReason == .uncaughtSignal)
        #expect(finishedAtKill < Int64(orders) / 2, "the kill landed mid-run (\(finishedAtKill) of \(orders) finished)")

        let deadline = ContinuousClock.now + .seconds(180)
        while Self.terminalCount(stores) < Int64(orders), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(250)) }
        #expect(Self.terminalCount(stores) == Int64(orders), "every order ends after the kill")
        processes.stopAll()

        let report = try ConservationCheck(location: stores).run()
        #expect(report.ok, "\(report.violations)")
        #expect(report.inFlight == Self.manualReviewCount(stores), "orders not final: \(Self.unfinished(stores))")
        let ledger = try StoreConnection.open(location: stores, name: "gateway", readOnly: true)
        #expect(try ledger.scalar("SELECT COUNT(*) FROM (SELECT order_id FROM ledger WHERE kind = 'charge' GROUP BY order_id HAVING COUNT(*) > 1) AS twice") == 0, "no order charged twice")
    }
}
