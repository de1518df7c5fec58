/// One thing `lint` says about a saga: how bad, which step or state (and where in the
/// definition), a stable code, and a one-line why. Codable for `lint --json`.
public struct LintFinding: Codable, Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Codable, Hashable, Sendable, Comparable, CaseIterable {
        /// A failure path that loses money, stock or a shipment, or a policy that cannot work:
        /// `lint` exits 1, and `run`/`worker` refuse the configuration.
        case error
        case warning
        case info

        public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
        var rank: Int { self == .error ? 0 : self == .warning ? 1 : 2 }
    }

    /// Stable names (docs/asl.md explains each).
    public struct Code: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }
        public var description: String { rawValue }

        /// A failure leaves an earlier effect (charge, reservation, shipment) without an undo.
        public static let compensationGap = Code(rawValue: "compensation-gap")
        /// The undos do not run newest effect first.
        public static let undoOrder = Code(rawValue: "undo-order")
        /// An undo that is not retried: one failure stops the chain.
        public static let compensationNoRetry = Code(rawValue: "compensation-no-retry")
        /// An undo whose failure ends the chain with no manual-review (or alerting) exit.
        public static let compensationNoExit = Code(rawValue: "compensation-no-exit")
        /// Every failure of the step parks the order (`on_exhausted: park`).
        public static let parksEveryFailure = Code(rawValue: "parks-every-failure")
        /// A failure path that ends the execution as a success.
        public static let failureReportedAsSuccess = Code(rawValue: "failure-reported-as-success")
        /// A retried call that carries no idempotency key.
        public static let retryWithoutIdempotencyKey = Code(rawValue: "retry-without-idempotency-key")
        /// No timeout at all (ASL's default, 99999999 s).
        public static let noTimeout = Code(rawValue: "no-timeout")
        /// An enclosing timeout shorter than one attempt plus its retries' backoff.
        public static let timeoutBelowRetryBudget = Code(rawValue: "timeout-below-retry-budget")
        /// A heartbeat not shorter than the timeout, or one where nothing sends heartbeats.
        public static let heartbeatNotBelowTimeout = Code(rawValue: "heartbeat-not-below-timeout")
        public static let heartbeatWithoutCallback = Code(rawValue: "heartbeat-without-callback")
        /// The whole saga's worst case (info), and when it is above the saga's budget.
        public static let sagaWorstCase = Code(rawValue: "saga-worst-case")
        public static let sagaOverBudget = Code(rawValue: "saga-over-budget")
        /// `States.ALL` ahead of specific errors: the ones after it never match.
        public static let catchAllFirst = Code(rawValue: "catch-all-first")
        /// Retrying an error that a retry will not fix.
        public static let retryNonTransient = Code(rawValue: "retry-non-transient")
        /// A polling loop (through a Wait) with no bound.
        public static let unboundedLoop = Code(rawValue: "unbounded-loop")
        /// A Resource that is not a Step Functions resource ARN.
        public static let unknownResource = Code(rawValue: "unknown-resource")
        /// An error name the task's integration never raises (DynamoDb. vs DynamoDB.).
        public static let errorNameNeverRaised = Code(rawValue: "error-name-never-raised")
        /// The definition cannot be imported (the reasons follow in the message).
        public static let notImportable = Code(rawValue: "not-importable")
    }

    public var severity: Severity
    public var code: Code
    /// The step (`payment`, `compensation`, `saga`) or the state's name.
    public var subject: String
    /// Where in the ASL definition; `nil` for a configuration.
    public var path: ASLPath?
    public var message: String

    public init(_ severity: Severity, _ code: Code, _ subject: String, path: ASLPath? = nil, _ message: String) {
        self.severity = severity
        self.code = code
        self.subject = subject
        self.path = path
        self.message = message
    }

    public var description: String {
        "\(severity.rawValue) \(code) \(subject)" + (path.map { " (\($0))" } ?? "") + ": \(message)"
    }
}
