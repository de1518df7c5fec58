import FulfillmentMetrics
import Logging
import ServiceLifecycle
import Synchronization

/// The alerts of one process as they stand: what `/api/alerts` and `stats` show.
public final class AlertBoard: Sendable {
    private let evaluator: Mutex<AlertEvaluator>
    private let lastEvaluation = Mutex<Double?>(nil)

    public init(rules: [AlertRule]) { evaluator = Mutex(AlertEvaluator(rules: rules)) }

    public var rules: [AlertRule] { evaluator.withLock { $0.rules } }
    /// Firing and pending alerts.
    public var alerts: [ActiveAlert] { evaluator.withLock { $0.alerts } }
    public var firing: [ActiveAlert] { evaluator.withLock { $0.firing } }
    /// When the rules were last evaluated (Unix seconds), nil before the first time.
    public var evaluatedAt: Double? { lastEvaluation.withLock { $0 } }

    public func evaluate(_ snapshot: MetricsSnapshot) -> [AlertEvaluator.Transition] {
        lastEvaluation.withLock { $0 = snapshot.at }
        return evaluator.withLock { $0.evaluate(snapshot) }
    }
}

/// Evaluates the alert rules in process every interval (the embedded default needs no
/// Prometheus server) and hands each transition on: a line on the terminal, the webhook,
/// the store `stats` reads.
public struct AlertMonitor: Service {
    public let board: AlertBoard
    let interval: Duration
    let snapshot: @Sendable () async -> MetricsSnapshot
    let onEvaluation: @Sendable ([AlertEvaluator.Transition], AlertBoard) async -> Void

    public init(
        board: AlertBoard, intervalSeconds: Double, snapshot: @escaping @Sendable () async -> MetricsSnapshot,
        onEvaluation: @escaping @Sendable ([AlertEvaluator.Transition], AlertBoard) async -> Void
    ) {
        self.board = board
        interval = .milliseconds(Int64(intervalSeconds * 1000))
        self.snapshot = snapshot
        self.onEvaluation = onEvaluation
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let transitions = board.evaluate(await snapshot())
            await onEvaluation(transitions, board)
            // A stop must not wait out the interval.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}

extension AlertEvaluator.Transition {
    /// The line `run` prints for it.
    public var line: String {
        switch self {
        case .fired(let alert): "ALERT firing [\(alert.severity)] \(alert.name)\(alert.labelText): \(alert.summary)"
        case .resolved(let alert, _): "ALERT resolved \(alert.name)\(alert.labelText)"
        }
    }
}

extension ActiveAlert {
    var labelText: String {
        labels.isEmpty ? "" : "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
    }
}
