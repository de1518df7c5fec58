import ArgumentParser
import Broker
import Foundation
import Messaging
import SagaAssembly
import SagaDomain
import Workers

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the whole saga in one process on the embedded broker.",
        discussion: """
            Starts the embedded, disk-persistent broker, the dispatcher (intake, tracker, compensation driver, watchdog) and every worker. With --orders N it generates that load and exits once every order is terminal, printing a summary and the conservation check; with --drain it processes what is already queued (e.g. by `fulfillment produce`) and exits; otherwise it serves until SIGINT/SIGTERM.

            Exit code 0: every order terminal and `check` holds; 1: check failed or orders left in flight; 2: usage or runtime error.
            """
    )

    @OptionGroup var saga: LocalSagaOptions
    @Option(help: "Generate this many synthetic orders, then exit when all are terminal.") var orders: Int?
    @Flag(help: "Process what is already queued on `orders` and exit when every order is terminal.") var drain = false
    @Option(help: "Fault profile of the simulated outside world: none, default, chaos, or one from the config.") var faults = "none"
    @Option(help: "Share of generated orders from VIP customers (0-1).") var vipShare: Double = 0.05
    @Option(help: "Generated orders per second (default: as fast as possible).") var rate: Double?
    @Option(help: "Broker durability: always, batch, interval:MS, never.") var fsync: FsyncPolicy = .batch
    @Option(help: "Stock file (JSON object SKU -> units) used when the inventory is first created.") var stock: String?
    @Option(help: "Handlers per worker running at once (overrides workers.concurrency).") var concurrency: Int?
    @Option(help: "Give up waiting after this many seconds (exit 1 if orders are still in flight).") var maxSeconds: Double?
    @Option(help: "Also serve the data directory over the Kafka protocol on HOST:PORT (e.g. 127.0.0.1:9092), so kcat can watch the saga.") var listen: String?
    @OptionGroup(title: "Who may connect to --listen") var listenerSecurity: ListenerSecurityOptions
    @OptionGroup(title: "Limits per Kafka client (with --listen)") var listenerLimits: ListenerLimitOptions
    @OptionGroup var http: HTTPOptions
    @OptionGroup var admin: AdminOptions
    @OptionGroup var lint: LintGate
    @Flag(help: "Print the summary as one JSON object.") var json = false

    func validate() throws {
        if let orders, orders <= 0 { throw ValidationError("--orders must be positive") }
        if orders != nil && drain { throw ValidationError("use either --orders or --drain, not both") }
        guard (0...1).contains(vipShare) else { throw ValidationError("--vip-share must be between 0 and 1") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        if let concurrency, concurrency <= 0 { throw ValidationError("--concurrency must be positive") }
        _ = try http.address(default: Self.defaultHTTP)
        _ = try listenerLimits.limits()
    }

    static let defaultHTTP = "127.0.0.1:8080"

    func run() async throws {
        var exitCode: Int32 = 0
        try await reportingFailures {
            var configuration = try saga.settings.loadConfiguration()
            try lint.check(configuration, source: saga.settings.config)
            if let concurrency { configuration.concurrency = concurrency }
            var options = SagaRun.Options(dataDirectory: saga.dataDir, configuration: configuration)
            options.storeLocation = try saga.storeLocation
            options.faults = faults
            options.orders = orders
            options.drain = drain
            options.vipShare = vipShare
            options.rate = rate
            options.fsync = fsync
            options.maxSeconds = maxSeconds
            if let listen {
                let (host, port) = try parseListenAddress(listen)
                try listenerSecurity.checkExposure(host: host)
                options.listenEncryption = try listenerSecurity.encryption()
                options.listenAuthenticator = try listenerSecurity.authenticator()
                options.listenHost = host
                options.listenPort = port
                options.listenLimits = try listenerLimits.limits()
            }
            if let stock { options.stockFile = try InventoryStore.loadStockFile(stock) }
            options.operatorOptions.http = try http.address(default: Self.defaultHTTP)
            try admin.apply(to: &options.operatorOptions)
            // Progress (records, rate, ETA) rewrites one line on a terminal; piped, or with
            // --json, it stays quiet. What is said once (where it listens, alerts) always shows.
            let progress = ProgressLine(enabled: isatty(STDERR_FILENO) != 0 && !json)
            if orders == nil && !drain {
                writeStderr("serving on \(saga.dataDir); stop with Ctrl-C (SIGINT) or SIGTERM")
            }
            let summary = try await SagaRun(options: options, logger: saga.log.logger("fulfillment")).run(
                progress: { progress.show($0) }, notice: { progress.say($0) })
            progress.finish()
            guard let summary else { return }
            if json {
                try printJSON(summary)
            } else {
                print(Self.describe(summary))
            }
            if !summary.check.ok || summary.in_flight > 0 { exitCode = 1 }
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    static func describe(_ s: SagaRun.Summary) -> String {
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var lines = [
            "orders        \(s.orders) (faults: \(s.faults))",
            "completed     \(s.completed)",
            "compensated   \(s.compensated)",
            "rejected      \(s.rejected)",
            "manual review \(s.manual_review)",
            "in flight     \(s.in_flight)",
            s.duration_s > 0
                ? "throughput    \(f(s.orders_per_s)) orders/s (last order finished after \(f(s.duration_s)) s; history fully recorded after \(f(s.tracked_s)) s)"
                : "throughput    no order finished in this run (history fully recorded after \(f(s.tracked_s)) s)",
        ]
        for tier in ["standard", "vip"] {
            if let l = s.latency_ms[tier], l.count > 0 {
                lines.append("latency \(tier.padding(toLength: 8, withPad: " ", startingAt: 0)) p50 \(f(l.p50)) ms, p99 \(f(l.p99)) ms (\(l.count) orders)")
            }
        }
        let steps = SagaStep.allCases.map(\.rawValue) + ["compensation"]
        lines.append("retries       " + steps.compactMap { step in s.retries[step].map { "\(step) \($0)" } }.joined(separator: ", "))
        lines.append("dead letters  " + steps.compactMap { step in s.dead_letters[step].map { "\(step) \($0)" } }.joined(separator: ", "))
        lines.append("check         " + (s.check.ok ? "ok (\(s.check.ordersChecked) finished orders)" : "FAILED: \(s.check.violations.count) violation(s)"))
        for violation in s.check.violations.prefix(20) {
            lines.append("  - \(violation.orderID ?? "all orders"): \(violation.invariant): \(violation.detail)")
        }
        return lines.joined(separator: "\n")
    }
}
