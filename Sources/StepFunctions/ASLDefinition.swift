import SagaDomain

/// A parsed Amazon States Language definition (or one branch or item processor inside it):
/// its states in document order, each with the JSON path it was read from.
public struct ASLDefinition: Sendable {
    public enum QueryLanguage: String, Sendable {
        case jsonPath = "JSONPath"
        case jsonata = "JSONata"
    }

    /// `$` for the whole definition, `$.States.X.Branches[0]` for a branch.
    public var path: ASLPath
    public var comment: String?
    public var startAt: String
    /// The execution's own `TimeoutSeconds` (top level only): uncatchable when it fires.
    public var timeoutSeconds: Double?
    public var queryLanguage: QueryLanguage
    public var states: [ASLState]
    /// The whole document, for what the model does not name.
    public var json: JSONValue

    public func state(named name: String) -> ASLState? { states.first { $0.name == name } }

    /// This definition's states and those of every branch and item processor inside it.
    public var allStates: [ASLState] {
        states.flatMap { [$0] + $0.branches.flatMap(\.allStates) + ($0.itemProcessor?.allStates ?? []) }
    }

    /// Whether this definition or any state in it uses JSONata.
    public var usesJSONata: Bool {
        queryLanguage == .jsonata || allStates.contains { $0.queryLanguage == .jsonata }
    }
}

/// The states' types (`Type`).
public enum ASLStateType: String, Sendable, CaseIterable {
    case task = "Task"
    case pass = "Pass"
    case choice = "Choice"
    case wait = "Wait"
    case succeed = "Succeed"
    case fail = "Fail"
    case parallel = "Parallel"
    case map = "Map"
}

/// One state, with the fields the importer and the lint read; `json` keeps the rest.
public struct ASLState: Sendable {
    public var name: String
    public var path: ASLPath
    public var type: ASLStateType
    public var comment: String?
    public var next: String?
    public var isEnd: Bool
    public var queryLanguage: ASLDefinition.QueryLanguage?
    /// Task: `Resource`, and `Parameters` (JSONPath) or `Arguments` (JSONata).
    public var resource: String?
    public var parameters: JSONValue?
    public var retry: [ASLRetrier]
    public var catchers: [ASLCatcher]
    public var timeoutSeconds: Double?
    public var heartbeatSeconds: Double?
    /// `TimeoutSecondsPath` / `HeartbeatSecondsPath` (or JSONata expressions): known at run time only.
    public var dynamicTimeout: Bool
    /// Choice: each rule's target and JSON; `Default`.
    public var choices: [ASLChoiceRule]
    public var defaultNext: String?
    /// Parallel: `Branches`; Map: `ItemProcessor` (or the older `Iterator`) and its mode.
    public var branches: [ASLDefinition]
    public var itemProcessor: ASLDefinition?
    public var isDistributedMap: Bool
    /// Fail: `Error`.
    public var error: String?
    public var json: JSONValue

    /// Every state this one can go to without an error: `Next`, Choice targets and `Default`.
    public var transitions: [String] {
        ([next, defaultNext].compactMap { $0 } + choices.map(\.next)).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    /// A task that waits for an outside party to hand back its task token.
    public var isCallback: Bool { resource?.hasSuffix(".waitForTaskToken") ?? false }

    /// A task that waits for a job or a nested execution to finish (`.sync`, `.sync:2`).
    public var isSyncJob: Bool { resource.map { $0.hasSuffix(".sync") || $0.contains(".sync:") } ?? false }

    /// `TimeoutSeconds` and `HeartbeatSeconds` with the exact fractions an export keeps in
    /// the state's comment (`ExactDurations`).
    public var exactTimeoutSeconds: Double? { ExactDurations.value("TimeoutSeconds", timeoutSeconds, comment: comment) }
    public var exactHeartbeatSeconds: Double? { ExactDurations.value("HeartbeatSeconds", heartbeatSeconds, comment: comment) }

    /// An activity (`arn:aws:states:REGION:ACCOUNT:activity:NAME`): a worker polls for its
    /// tasks and may send heartbeats, as ours do.
    public var isActivity: Bool { resource.map { $0.hasPrefix("arn:aws:states:") && $0.contains(":activity:") } ?? false }

    /// Ends the execution (or its branch) when it succeeds: `End`, Succeed, Fail.
    public var isTerminal: Bool { isEnd || type == .succeed || type == .fail }
}

/// One retrier (`Retry[i]`), with the fields as written (absent stays `nil`; ASL's defaults
/// are applied where they are used).
public struct ASLRetrier: Sendable {
    public var path: ASLPath
    public var errorEquals: [String]
    public var intervalSeconds: Double?
    public var maxAttempts: Int?
    public var backoffRate: Double?
    public var maxDelaySeconds: Double?
    public var jitterStrategy: String?
    public var comment: String?
}

/// One catcher (`Catch[i]`).
public struct ASLCatcher: Sendable {
    public var path: ASLPath
    public var errorEquals: [String]
    public var next: String
}

/// One rule of a Choice (`Choices[i]`): where it goes and what it tests.
public struct ASLChoiceRule: Sendable {
    public var path: ASLPath
    public var next: String
    public var json: JSONValue
}

extension ASLRetrier {
    /// This retrier as our retry rule: error names mapped (`ASLErrorName`), ASL's defaults
    /// where a field is absent (IntervalSeconds 1, MaxAttempts 3, BackoffRate 2.0), exact
    /// fractions read back from an exported comment.
    public var rule: RetryRule {
        var rule = RetryRule(
            errorEquals: ASLErrorName.ours(errorEquals),
            intervalSeconds: ExactDurations.value("IntervalSeconds", intervalSeconds, comment: comment) ?? 1,
            maxAttempts: maxAttempts ?? 3,
            backoffRate: backoffRate ?? 2,
            maxDelaySeconds: ExactDurations.value("MaxDelaySeconds", maxDelaySeconds, comment: comment))
        rule.jitter = jitterStrategy == "FULL" ? .full : .none
        return rule
    }
}
