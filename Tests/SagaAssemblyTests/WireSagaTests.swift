import Dispatcher
import Foundation
import SagaAssembly
import StoreDatabase
import TestSupport
import Testing

/// The saga over the Kafka protocol: `fulfillment broker` (the embedded broker behind the wire
/// door) with the dispatcher and one librdkafka-based worker per step as separate OS
/// processes, the default fault profile on. The broker is SIGKILLed mid-run and restarted on
/// the same port; the clients reconnect, the groups re-form, and every order still ends.
@Suite(.serialized, .timeLimit(.minutes(5))) struct WireSagaTests {
    @Test func workersOnTheWireFinishEveryOrderAcrossABrokerCrash() async throws {
        let temporary = TemporaryDirectory("saga-wire")
        let directory = temporary.path
        let fast = SagaHarness.repositoryRoot.appendingPathComponent("config/profiles/fast.yaml").path
        // Clients stop before the broker, so they can finish and commit on the way out.
        let brokerProcesses = KafkaScaleOutTests.Processes()
        let processes = KafkaScaleOutTests.Processes()
        defer {
            processes.stopAll()
            brokerProcesses.stopAll()
        }

        let port = freeLoopbackPort()
        let brokers = "127.0.0.1:\(port)"
        let brokerArguments = ["broker", "--data-dir", directory + "/broker", "--listen", brokers]
        let broker = try brokerProcesses.launch(brokerArguments, log: directory + "/broker-1.out")
        try await Loopback.waitUntilListening(port: port)
        let stores = try StoreBackend.sqlite.freshLocation(directory: directory + "/stores")
        let common = ["--brokers", brokers, "--config", fast, "--store", "sqlite:" + stores, "--faults", "default", "--state-dir", directory + "/state"]

        let dispatcher = try processes.launch(["dispatcher"] + common, log: directory + "/dispatcher.out")
        try await Task.sleep(for: .seconds(2))
        #expect(dispatcher.isRunning, "the dispatcher started: \((try? String(contentsOfFile: directory + "/dispatcher.out", encoding: .utf8)) ?? "")")
        for step in ["payment", "inventory", "shipping", "notification"] {
            _ = try processes.launch(["worker", step] + common, log: directory + "/\(step).out")
        }
        let orders = 4000
        let produce = try CrashRecoveryTests.launch(["produce", "--generate", "\(orders)", "--brokers", brokers, "--config", fast], stdout: directory + "/produce.out")
        produce.waitUntilExit()
        #expect(produce.terminationStatus == 0)

        let flowing = ContinuousClock.now + .seconds(60)
        while KafkaScaleOutTests.terminalCount(stores) < 200, ContinuousClock.now < flowing { try await Task.sleep(for: .milliseconds(100)) }
        let finishedAtKill = KafkaScaleOutTests.terminalCount(stores)
        kill(broker.processIdentifier, SIGKILL)
        broker.waitUntilExit()
        // The tracker records outcomes in batches, so the count jumps (1,644 of 2,000 seen at
        // once in CI): mid-run means some orders were still open when the broker died.
        #expect(finishedAtKill < Int64(orders), "the broker died mid-run (\(finishedAtKill) of \(orders) finished)")
        try await Task.sleep(for: .seconds(1))
        _ = try brokerProcesses.launch(brokerArguments, log: directory + "/broker-2.out")
        try await Loopback.waitUntilListening(port: port)

        let deadline = ContinuousClock.now + .seconds(180)
        while KafkaScaleOutTests.terminalCount(stores) < Int64(orders), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(250)) }
        #expect(KafkaScaleOutTests.terminalCount(stores) == Int64(orders), "every order ends after the broker restart")
        processes.stopAll()
        brokerProcesses.stopAll()

        let report = try ConservationCheck(location: stores).run()
        #expect(report.ok, "\(report.violations)")
        #expect(report.inFlight == KafkaScaleOutTests.manualReviewCount(stores), "orders not final: \(KafkaScaleOutTests.unfinished(stores))")
        let ledger = try StoreConnection.open(location: stores, name: "gateway", readOnly: true)
        #expect(try ledger.scalar("SELECT COUNT(*) FROM (SELECT order_id FROM ledger WHERE kind = 'charge' GROUP BY order_id HAVING COUNT(*) > 1) AS twice") == 0, "no order charged twice")
    }
}
