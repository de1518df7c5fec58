import Alerting
import Dispatcher
import Foundation
import FulfillmentMetrics
import IOThreads
import Logging
import Messaging
import OperatorHTTP
import SagaDomain
import ServiceLifecycle

/// What a long-running process serves operators: `--http`, the admin token, the alert
/// webhook. Parsed by the command, used by `OperatorAssembly`.
public struct OperatorOptions: Sendable {
    public var http: HTTPAddress = .off
    /// `--admin-token-file`; without it a token is generated (processes that take writes).
    public var adminTokenFile: String?
    /// Where a generated token is written (only its owner can read it), so the CLI and a
    /// browser on this machine can use it.
    public var generatedTokenFile: String?
    /// `--alert-webhook`: Alertmanager-format POSTs of each alert that fires or resolves.
    public var alertWebhook: URL?

    public init() {}
}

/// The operator side of one process, assembled: the metrics backend every component records
/// through, readiness, the sampler of broker and store gauges, the in-process alerts and
/// the HTTP listener, as services of the process's `ServiceGroup`.
public final class OperatorAssembly: Sendable {
    public let backend = PrometheusBackend()
    public let readiness = Readiness()
    public let options: OperatorOptions
    let logger: Logger

    public init(options: OperatorOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// The admin token for a process that takes writes: `--admin-token-file`, or generated
    /// (and written to `generatedTokenFile`). A listener other machines can reach needs a
    /// token file: a generated one would be printed into some log.
    public func adminToken(announce: @Sendable (String) -> Void) throws -> AdminToken? {
        guard case .listen = options.http else { return nil }
        if let file = options.adminTokenFile { return try AdminToken.load(path: file) }
        guard options.http.isLoopback else {
            throw AdminTokenError(message: "--http \(options.http.description) can be reached from other machines: give the admin API a token with --admin-token-file FILE (or listen on 127.0.0.1)")
        }
        let token = AdminToken.generate()
        // Written where only the owner reads it, never printed: stderr ends up in logs.
        guard let path = options.generatedTokenFile else {
            throw AdminTokenError(message: "no place to write a generated admin token: give one with --admin-token-file FILE")
        }
        try token.save(path: path)
        announce("admin token for writes (Authorization: Bearer …) written to \(path)")
        return token
    }

    /// The services of the saga's operator side for a node: the alert monitor (when the node
    /// hosts the dispatcher) and the listener (unless `--http off`).
    public func services(
        node: SagaNode?, broker: any MessageBroker, configuration: SagaConfiguration, role: String, adminToken: AdminToken?,
        notice: @escaping @Sendable (String) -> Void
    ) -> [any Service] {
        var services: [any Service] = []
        let store = node?.dispatcherStore
        let sampler = node.map { SagaSampler(broker: broker, store: store, configuration: configuration, gauges: $0.metrics.sampled, logger: logger) }
        readiness.addCheck("broker") { (try? await broker.listTopics()) != nil }
        if let store {
            readiness.addCheck("stores") { (try? await BlockingIO.run { try store.connection.scalar("SELECT 1") }) != nil }
        }
        for group in node?.consumerGroups ?? [] { readiness.expect(group) }
        var board: AlertBoard?
        if let store {
            let alerts = AlertBoard(rules: AlertRules.make(configuration))
            board = alerts
            let backend = self.backend
            let logger = self.logger
            let webhook = options.alertWebhook.map { AlertmanagerWebhook(url: $0, externalURL: options.http.url ?? "", logger: logger) }
            services.append(AlertMonitor(
                board: alerts, intervalSeconds: configuration.alerts.evaluationIntervalSeconds,
                snapshot: {
                    await sampler?.sample(freshness: .zero)
                    return backend.snapshot(at: Date().timeIntervalSince1970)
                },
                onEvaluation: { transitions, board in
                    for transition in transitions {
                        notice(transition.line)
                        await webhook?.send(transition)
                    }
                    let firing = board.firing
                    let at = board.evaluatedAt ?? Date().timeIntervalSince1970
                    do {
                        try await BlockingIO.run { try store.saveFiringAlerts(firing, evaluatedAt: at) }
                    } catch {
                        logger.warning("could not save the firing alerts for `stats`", metadata: ["error.message": "\(error)"])
                    }
                }))
        }
        if case .listen(let host, let port) = options.http {
            var surface = OperatorSurface(broker: broker, configuration: configuration, backend: backend, readiness: readiness, role: role, logger: logger)
            surface.dispatcherStore = store
            surface.alerts = board
            surface.sampler = sampler
            surface.adminToken = adminToken
            services.append(OperatorHTTPService(surface: surface, host: host, port: port) { bound in
                notice("HTTP on http://\(host.contains(":") ? "[\(host)]" : host):\(bound) (/healthz, /readyz, /metrics, /api/, console at /)")
            })
        }
        return services
    }
}

extension HTTPAddress {
    var description: String {
        switch self {
        case .off: "off"
        case .listen(let host, let port): "\(host):\(port)"
        }
    }

    /// The base URL of the listener (for links in alerts).
    var url: String? {
        guard case .listen(let host, let port) = self else { return nil }
        return "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }
}
