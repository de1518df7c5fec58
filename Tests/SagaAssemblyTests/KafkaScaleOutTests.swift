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

        func launch(_ arguments: [String], log: String, stderr: String? = nil) throws -> Process {
            let process = try CrashRecoveryTests.launch(arguments, stdout: log, stderr: stderr)
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
            let history = (try? store.connection.query("SELECT topic, event, step, error_class FROM every_history WHERE order_id = ? ORDER BY at, stage, seq", [.text(id)]) { row in
                (0..<4).map { row.text($0) }.joined(separator: " ")
            }) ?? []
            return "\(id) \(state): \(history.joined(separator: " | "))"
        }.joined(separator: "; ")
    }

    /// The dispatcher process's console and API on a Kafka deployment: the page, its live
    /// stream with the open orders per step, an order's history, the dead letters.
    static func expectConsoleServed(log: String, stores: String) async throws {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let marker = try #require(text.range(of: "HTTP on http://127.0.0.1:"), "the dispatcher reports its listener: \(text.suffix(2000))")
        let port = try #require(Int(text[marker.upperBound...].prefix { $0.isNumber }))
        let client = OperatorClient(port: port)
        let page = try await client.get("/")
        #expect(page.status == 200 && page.text.contains("console.js"))
        #expect(try await client.get("/console.js").status == 200)
        #expect(try await client.get("/readyz").status == 200)
        let store = try DispatcherStore(location: stores, readOnly: true)
        let id = try #require(try store.connection.query("SELECT order_id FROM orders LIMIT 1") { $0.text(0) }.first)
        let order = try await client.get("/api/orders/" + id)
        #expect(order.status == 200 && order.json["history"] is [Any], "\(order.text)")
        #expect(try await client.get("/api/dlq").status == 200)
        #expect(try await client.get("/api/graph").json["nodes"] is [Any])
        // One frame of the graph page's stream: every step with its figures.
        // (curl: swift-corelibs-foundation's URLSession has no streaming bytes API.)
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-sN", "--max-time", "4", "http://127.0.0.1:\(port)/api/events?view=graph"]
        let output = Pipe()
        curl.standardOutput = output
        try curl.run()
        let streamed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        let line = try #require(streamed.split(separator: "\n").first { $0.hasPrefix("data: ") }, "no event in \(streamed.prefix(500))")
        let frame = (try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]) ?? [:]
        let steps = try #require(frame["steps"] as? [String: [String: Any]], "\(frame)")
        #expect(Set(steps.keys) == ["payment", "inventory", "shipping", "notification", "compensation"])
        #expect(steps.values.allSatisfy { $0["in_flight"] is Int })
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

        // The dispatcher serves the operator side too: the API and the console, over its store.
        _ = try processes.launch(["dispatcher", "--http", "127.0.0.1:0"] + common, log: directory + "/dispatcher.out", stderr: directory + "/dispatcher.err")
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
        try await Self.expectConsoleServed(log: directory + "/dispatcher.err", stores: stores)
        processes.stopAll()

        let report = try ConservationCheck(location: stores).run()
        #expect(report.ok, "\(report.violations)")
        #expect(report.inFlight == Self.manualReviewCount(stores), "orders not final: \(Self.unfinished(stores))")
        let ledger = try StoreConnection.open(location: stores, name: "gateway", readOnly: true)
        #expect(try ledger.scalar("SELECT COUNT(*) FROM (SELECT order_id FROM ledger WHERE kind = 'charge' GROUP BY order_id HAVING COUNT(*) > 1) AS twice") == 0, "no order charged twice")
    }
}
