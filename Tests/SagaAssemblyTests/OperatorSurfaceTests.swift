import Broker
import Foundation
import FulfillmentMetrics
import Hummingbird
import Logging
import Messaging
import SagaDomain
import StoreDatabase
import Synchronization
import TestSupport
import Testing

/// The operator side of a running saga, through the real executable and its HTTP listener:
/// `/metrics` (checked by promtool, and every figure of `stats` derived from it after a run
/// with faults), the admin API with its token and audit trail, alerts through a webhook,
/// and a real Prometheus server scraping it.
@Suite(.serialized) struct OperatorSurfaceTests {
    typealias H = SagaHarness
    static let fast = SagaHarness.repositoryRoot.appendingPathComponent("config/profiles/fast.yaml").path

    /// `count` orders as NDJSON: mostly plain, some retried, some declined, some VIP.
    static func orders(_ count: Int, prefix: String) -> Data {
        var lines: [String] = []
        for i in 0..<count {
            let token = i % 10 == 3 ? "tok_transient_2" : i % 25 == 7 ? "tok_decline" : "tok_visa"
            let order = H.order("\(prefix)-\(i)", token: token, tier: i % 8 == 0 ? .vip : .standard)
            lines.append(String(decoding: order.canonicalJSON(), as: UTF8.self))
        }
        return Data(lines.joined(separator: "\n").utf8)
    }

    /// Polls `GET /api/stats` until `accepted` orders are accepted and none is in flight.
    static func waitForSaga(_ client: OperatorClient, accepted: Int, timeout: Duration = .seconds(120)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let stats = try await client.get("/api/stats").json
            if stats["orders"] as? Int == accepted, stats["in_flight"] as? Int == 0 { return stats }
            if ContinuousClock.now > deadline { throw TestSupportError("the saga did not finish: \(stats)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    static func stop(_ process: Process) {
        process.terminate()
        process.waitUntilExit()
    }

    @Test func everyFigureOfStatsIsDerivableFromMetricsAfterARunWithFaultsAndPromtoolAcceptsThem() async throws {
        let directory = TemporaryDirectory("operator-metrics")
        let (process, port) = try await launchWithHTTP(
            ["run", "--data-dir", directory.path + "/data", "--config", Self.fast, "--faults", "default", "--http", "127.0.0.1:0"], log: directory.path + "/run.log")
        defer { Self.stop(process) }
        let token = try String(contentsOfFile: directory.path + "/data/admin-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let client = OperatorClient(port: port, token: token)
        let submitted = try await client.post("/api/orders", Self.orders(400, prefix: "m") + Data("\n{\"order_id\":\"bad-1\"}\nnot json\n".utf8))
        #expect(submitted.status == 202, "\(submitted.text)")
        #expect((submitted.json["accepted"] as? [Any])?.count == 400)
        #expect((submitted.json["rejected"] as? [[String: Any]])?.map { $0["reason"] as? String } == ["missing_field", "not_json"])
        let stats = try await Self.waitForSaga(client, accepted: 400)
        // Let the tracker's last batch and the sampled gauges settle, then read both at rest.
        try await Task.sleep(for: .seconds(1.5))
        let settled = try await client.get("/api/stats").json
        let exposition = try await client.get("/metrics")
        #expect(exposition.status == 200)
        #expect(exposition.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let (promtool, said) = try Self.promtoolCheckMetrics(exposition.body)
        #expect(promtool == 0, "promtool check metrics: \(said)")
        let m = MetricsSnapshot.parse(exposition.text)
        try Self.expectDerivable(settled, from: m)
        #expect(stats["orders"] as? Int == settled["orders"] as? Int)

        // The command-line `stats`, another process reading the data directory, says the same.
        let cli = try runFulfillment(["stats", "--json", "--data-dir", directory.path + "/data", "--config", Self.fast])
        #expect(cli.status == 0, "\(cli.stderr)")
        let fromCLI = try #require(try JSONSerialization.jsonObject(with: cli.stdout) as? [String: Any])
        for key in ["orders", "in_flight", "rejected", "compensations", "manual_review_alerts"] {
            #expect(fromCLI[key] as? Int == settled[key] as? Int, "\(key)")
        }
        #expect((fromCLI["states"] as? [String: Int]) == (settled["states"] as? [String: Int]), "\(fromCLI["states"] ?? "none") vs \(settled["states"] ?? "none")")
    }

    /// Every figure `stats` prints, computed from the metrics alone.
    static func expectDerivable(_ stats: [String: Any], from m: MetricsSnapshot) throws {
        let orders = MetricCatalogue.ordersTotal.name
        let inFlight = m.sums(MetricCatalogue.ordersInFlight.name, by: "state")
        let completed = m.sum(orders, ["outcome": "completed"])
        let compensated = m.sum(orders, ["outcome": "compensated"])
        #expect(stats["orders"] as? Int == Int(m.sum(orders, ["outcome": "accepted"])))
        #expect(stats["rejected"] as? Int == Int(m.sum(orders, ["outcome": "rejected"])))
        let reasons = try #require(stats["rejection_reasons"] as? [String: Int])
        #expect(reasons.mapValues(Double.init) == m.sums(MetricCatalogue.rejections.name, by: "reason"))
        let states = try #require(stats["states"] as? [String: Int])
        #expect((states["completed"] ?? 0) == Int(completed) && (states["compensated"] ?? 0) == Int(compensated), "\(states)")
        for (state, count) in states where state != "completed" && state != "compensated" {
            #expect(Double(count) == inFlight[state] ?? 0, "orders in \(state)")
        }
        #expect(stats["in_flight"] as? Int == Int(inFlight.filter { $0.key != "manual_review" }.values.reduce(0, +)))
        #expect(abs((stats["success_rate"] as? Double ?? -1) - completed / (completed + compensated)) < 1e-9)
        let window = m.sum(MetricCatalogue.lastCompletedTimestamp.name) - m.sum(MetricCatalogue.firstAcceptedTimestamp.name)
        let throughput = try #require(stats["completed_per_s"] as? Double)
        #expect(abs(throughput - completed / window) <= throughput * 1e-6, "completed_per_s \(throughput) vs \(completed / window)")
        let topics = SagaTopics()
        let steps = try #require(stats["steps"] as? [String: [String: Int]])
        for (step, figures) in steps {
            let dlt = topics.deadLetter(SagaStep(rawValue: step))
            #expect(Double(figures["retries"] ?? -1) == m.sum(MetricCatalogue.retries.name, ["step": step]), "\(step) retries")
            #expect(Double(figures["dead_letters"] ?? -1) == m.sum(MetricCatalogue.deadLetters.name, ["topic": dlt]), "\(step) dead letters")
            let timeouts = m.sum(MetricCatalogue.stepAttempts.name, ["step": step, "result": "timeout"])
                + m.sum(MetricCatalogue.stepAttempts.name, ["step": step, "result": "heartbeat_missed"])
            #expect(Double(figures["timeouts"] ?? -1) == timeouts, "\(step) timeouts")
        }
        #expect(Double(stats["compensations"] as? Int ?? -1) == m.sum(MetricCatalogue.compensationsStarted.name))
        #expect(Double(stats["manual_review_alerts"] as? Int ?? -1) == m.sum(MetricCatalogue.manualReviewAlerts.name))
        for (topic, depth) in try #require(stats["dlt_depth"] as? [String: Int]) {
            #expect(Double(depth) == m.sum(MetricCatalogue.topicRecords.name, ["topic": topic]), "depth of \(topic)")
        }
        for (group, lag) in try #require(stats["lag_records"] as? [String: Int]) {
            #expect(Double(lag) == m.sum(MetricCatalogue.consumerLag.name, ["group": group]), "lag of \(group)")
        }
        // Latency: the exact figure lies in the bucket histogram_quantile picks.
        let latency = try #require(stats["latency_ms"] as? [String: [String: Any]])
        for (tier, figures) in latency {
            guard let count = figures["count"] as? Int, count > 0 else { continue }
            let buckets = m.buckets(MetricCatalogue.orderDuration.name, ["tier": tier, "outcome": "completed"])
            #expect(buckets.last?.count == Double(count), "\(tier) observations")
            for q in ["p50": 0.5, "p99": 0.99] {
                let exact = (figures[q.key] as? Double ?? -1) / 1000
                let bucket = try #require(MetricsSnapshot.quantileBucket(q.value, buckets))
                #expect(bucket.contains(exact) || abs(exact - bucket.upperBound) < 0.002 || abs(exact - bucket.lowerBound) < 0.002, "\(tier) \(q.key) \(exact) s outside \(bucket)")
            }
        }
    }

    @Test func writesNeedTheTokenAreAuditedAndBadRequestsGetJSONErrors() async throws {
        let directory = TemporaryDirectory("operator-api")
        let tokenFile = directory.path + "/token"
        try "a-token-for-the-tests-0123456789\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let (process, port) = try await launchWithHTTP(
            ["run", "--data-dir", directory.path + "/data", "--config", Self.fast, "--http", "127.0.0.1:0", "--admin-token-file", tokenFile],
            log: directory.path + "/run.log")
        defer { Self.stop(process) }
        let anonymous = OperatorClient(port: port)
        let wrong = OperatorClient(port: port, token: "not-the-token-at-all")
        let admin = OperatorClient(port: port, token: "a-token-for-the-tests-0123456789")
        let one = Data(H.order("api-1").canonicalJSON())

        let refused = try await anonymous.post("/api/orders", one)
        #expect(refused.status == 401 && refused.headers["www-authenticate"] == "Bearer")
        #expect((refused.json["error"] as? [String: Any])?["message"] as? String != nil, "a JSON error body: \(refused.text)")
        #expect(try await wrong.post("/api/orders", one).status == 401)
        #expect(try await admin.post("/api/orders", one).status == 202)
        #expect(try await admin.post("/api/orders", Data("not json".utf8)).status == 422)
        #expect(try await admin.post("/api/orders", Data("  \n".utf8)).status == 400)
        #expect(try await admin.post("/api/orders", Data(repeating: UInt8(ascii: "x"), count: 17 << 20)).status == 413, "bodies are capped")
        // The order goes through while the saga runs, and its history is served as `order --json` gives it.
        var report: [String: Any] = [:]
        for _ in 0..<200 {
            report = try await admin.get("/api/orders/api-1").json
            if (report["order"] as? [String: Any])?["state"] as? String == "completed" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect((report["order"] as? [String: Any])?["state"] as? String == "completed", "\(report)")
        #expect(try await admin.get("/api/orders/no-such-order").status == 404)
        // Its body as the intake stored it: canonical JSON of the order sent.
        let body = try await admin.get("/api/orders/api-1/body")
        #expect(body.status == 200, "\(body.status): \(body.text)")
        let served = try Order.decode(Array(body.body))
        #expect(served.orderID == "api-1" && served.amountCents == H.order("api-1").amountCents && served.canonicalJSON() == Array(body.body))
        #expect(try await admin.get("/api/orders/no-such-order/body").status == 404)
        // Served from the intake's store: the tracker's row keeps no second copy.
        let trackerStore = try StoreConnection(path: directory.path + "/data/dispatcher.sqlite", readOnly: true)
        #expect(try trackerStore.scalar("SELECT length(body) FROM orders WHERE order_id = 'api-1'") == 0)
        #expect(try await admin.get("/api/orders?state=bogus").status == 400)
        #expect(try await admin.get("/api/orders?state=in_flight&limit=0").status == 400)
        let page = try await admin.get("/api/orders?state=manual_review")
        #expect(page.status == 200 && (page.json["orders"] as? [Any])?.isEmpty == true && page.json["next"] is NSNull)
        #expect(try await admin.get("/api/dlq/not-a-dlt").status == 404)
        #expect(try await admin.get("/api/dlq/payment.requested.dlt?after=x").status == 400)
        #expect(try await admin.post("/api/dlq/payment.requested.dlt/redrive", Data("{}".utf8)).status == 400)
        #expect(try await admin.post("/api/dlq/payment.requested.dlt/redrive", Data("[".utf8)).status == 400)
        let preview = try await admin.post("/api/dlq/payment.requested.dlt/redrive", Data("{\"all\":true,\"dry_run\":true}".utf8))
        #expect(preview.status == 200 && preview.json["dry_run"] as? Bool == true, "\(preview.text)")
        #expect(try await anonymous.get("/api/topics").status == 200, "reads need no token")
        Self.stop(process)

        // Every write attempt left an audit record: who, what, when, the result.
        let (broker, _) = try quietBroker(directory.path + "/data", label: "audit-reader")
        defer { broker.shutdown() }
        let audit = try await broker.read(topic: "admin.audit", partition: 0, from: 0, maxRecords: 100)
        let entries = audit.compactMap { try? JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any] }
        #expect(entries.count == 9, "\(entries)")
        #expect(entries.map { $0["status"] as? Int } == [401, 401, 202, 422, 400, 413, 400, 400, 200])
        #expect(entries.allSatisfy { ($0["who"] as? String)?.hasPrefix("admin@127.0.0.1:") == true && $0["at"] is Int && $0["method"] as? String == "POST" })
        #expect(!audit.contains { String(decoding: $0.value, as: UTF8.self).contains("a-token-for-the-tests") }, "the token never lands in the audit")
    }

    @Test func aListenerOthersCanReachNeedsATokenFileAndHTTPOffServesNothing() async throws {
        let directory = TemporaryDirectory("operator-refusal")
        let open = try runFulfillment(["run", "--orders", "1", "--data-dir", directory.path + "/a", "--config", Self.fast, "--http", "0.0.0.0:0"])
        #expect(open.status == 2 && open.stderr.contains("--admin-token-file"), "\(open.stderr)")
        let off = try runFulfillment(["run", "--orders", "20", "--data-dir", directory.path + "/b", "--config", Self.fast, "--http", "off"])
        #expect(off.status == 0, "\(off.stderr)")
        #expect(!off.stderr.contains("HTTP on"))
        // Piped (not a terminal), progress stays quiet: no per-second lines, only the summary.
        #expect(!off.stderr.contains("orders/s"), "\(off.stderr)")
        #expect(try runFulfillment(["run", "--orders", "1", "--data-dir", directory.path + "/c", "--http", "nowhere"]).status == 2)
    }

    @Test func anAlertFiresInProcessReachesTheWebhookTheAPIAndStatsAndResolves() async throws {
        let directory = TemporaryDirectory("operator-alerts")
        let receiver = try await WebhookReceiver()
        defer { receiver.task.cancel() }
        var yaml = try String(contentsOfFile: Self.fast, encoding: .utf8)
        yaml += "\nalerts:\n  evaluation_interval_seconds: 0.25\n  for_seconds: 0\n  window_seconds: 5\n"
        let config = directory.path + "/alerting.yaml"
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let (process, port) = try await launchWithHTTP(
            ["run", "--data-dir", directory.path + "/data", "--config", config, "--http", "127.0.0.1:0", "--alert-webhook", "http://127.0.0.1:\(receiver.port)/hook"],
            log: directory.path + "/run.log")
        defer { Self.stop(process) }
        let token = try String(contentsOfFile: directory.path + "/data/admin-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let client = OperatorClient(port: port, token: token)
        // A refund that always fails parks the order in manual review: OrdersInManualReview fires.
        let parked = Data(H.order("parked-1", token: "tok_refund_fail_always", country: "XX").canonicalJSON())
        #expect(try await client.post("/api/orders", parked).status == 202)
        var firing: [[String: Any]] = []
        for _ in 0..<300 {
            firing = receiver.received.filter { $0["status"] as? String == "firing" }
            if firing.contains(where: { (($0["commonLabels"] as? [String: String])?["alertname"]) == "OrdersInManualReview" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let hook = try #require(firing.first { ($0["commonLabels"] as? [String: String])?["alertname"] == "OrdersInManualReview" }, "\(receiver.received)")
        #expect(hook["version"] as? String == "4")
        let alert = try #require((hook["alerts"] as? [[String: Any]])?.first)
        #expect((alert["labels"] as? [String: String])?["severity"] == "page")
        #expect((alert["annotations"] as? [String: String])?["summary"]?.contains("1 orders parked") == true, "\(alert)")
        let listed = try await client.get("/api/alerts").json
        #expect((listed["alerts"] as? [[String: Any]])?.contains { $0["name"] as? String == "OrdersInManualReview" && $0["firing_since"] is Double } == true, "\(listed)")
        let log = (try? String(contentsOfFile: directory.path + "/run.log", encoding: .utf8)) ?? ""
        #expect(log.contains("ALERT firing [page] OrdersInManualReview"), "\(log)")
        let cli = try runFulfillment(["stats", "--data-dir", directory.path + "/data", "--config", config])
        #expect(cli.output.contains("OrdersInManualReview"), "\(cli.output)")
    }

    @Test func aRealPrometheusScrapingTheSagaCountsEveryOrderItRan() async throws {
        let directory = TemporaryDirectory("operator-prometheus")
        let (process, port) = try await launchWithHTTP(
            ["run", "--data-dir", directory.path + "/data", "--config", Self.fast, "--faults", "default", "--http", "127.0.0.1:0"], log: directory.path + "/run.log")
        defer { Self.stop(process) }
        let token = try String(contentsOfFile: directory.path + "/data/admin-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let client = OperatorClient(port: port, token: token)
        #expect(try await client.post("/api/orders", Self.orders(300, prefix: "p")).status == 202)
        _ = try await Self.waitForSaga(client, accepted: 300)

        let prometheusPort = freeLoopbackPort()
        let config = """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: fulfillment
                static_configs:
                  - targets: ['127.0.0.1:\(port)']
            """
        try config.write(toFile: directory.path + "/prometheus.yml", atomically: true, encoding: .utf8)
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = [
            "--config.file=\(directory.path)/prometheus.yml", "--storage.tsdb.path=\(directory.path)/tsdb",
            "--web.listen-address=127.0.0.1:\(prometheusPort)",
        ]
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: { _ = FileManager.default.createFile(atPath: directory.path + "/prometheus.log", contents: nil); return directory.path + "/prometheus.log" }()))
        prometheus.standardOutput = logHandle
        prometheus.standardError = logHandle
        try prometheus.run()
        defer { Self.stop(prometheus) }
        let query = OperatorClient(port: prometheusPort)
        let expression = "sum(fulfillment_orders_total{outcome=~\"completed|compensated\"})"
        var answered = ""
        for _ in 0..<120 {
            if let answer = try? await query.get("/api/v1/query?query=" + expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!) {
                answered = answer.text
                let results = ((answer.json["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
                if let value = (results.first?["value"] as? [Any])?.last as? String, value == "300" { break }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(answered.contains("\"300\""), "Prometheus answered: \(answered)\n\((try? String(contentsOfFile: directory.path + "/prometheus.log", encoding: .utf8))?.suffix(2000) ?? "")")
    }

    static func promtoolCheckMetrics(_ exposition: Data) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(exposition)
        try input.fileHandleForWriting.close()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, said)
    }
}

/// A loopback receiver for the alert webhook: keeps each POST body.
final class WebhookReceiver: Sendable {
    private let bodies = RecordedBodies()
    let task: Task<Void, any Error>
    let port: Int

    final class RecordedBodies: Sendable {
        let list = Mutex<[Data]>([])
    }

    init() async throws {
        let bodies = self.bodies
        let router = Router()
        router.post("hook") { request, _ -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let data = Data(buffer.readableBytesView)
            bodies.list.withLock { $0.append(data) }
            return .ok
        }
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "webhook")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = stream.makeAsyncIterator()
        port = await iterator.next() ?? 0
    }

    /// The bodies received so far, as JSON objects.
    var received: [[String: Any]] {
        bodies.list.withLock { $0 }.compactMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }
}
