import SagaDomain

/// Turns a Step Functions definition into our saga configuration (docs/asl.md has the
/// table): Task states become steps (by `--map`, else by their names), `Retry` becomes the
/// step's retry rules field for field, `TimeoutSeconds`/`HeartbeatSeconds` carry over (no
/// `TimeoutSeconds` is ASL's 99999999 s, kept as such so `lint` flags it), `Catch` chains
/// become `compensate_on` and `undo`, the undo tasks' retries the compensation policy, a
/// Choice on tier or amount the VIP threshold. What has no faithful counterpart is refused,
/// every reason at once.
public struct ASLImport: Sendable {
    public var mapping: StateMapping
    /// What the definition does not say comes from here (topics, workers, faults, and the
    /// policy of a step no state maps to).
    public var base: SagaConfiguration

    public init(mapping: StateMapping = StateMapping(), base: SagaConfiguration = SagaConfiguration()) {
        self.mapping = mapping
        self.base = base
    }

    /// Our retry tiers are topics; a step has at most this many.
    public static let maxRetryTiers = 50

    public func run(_ definition: ASLDefinition, source: String = "definition") throws(ASLImportRefusal) -> ASLImportResult {
        var session = ImportSession(definition: definition, mapping: mapping, configuration: base)
        session.run()
        guard session.refusals.isEmpty else { throw ASLImportRefusal(source: source, reasons: session.refusals) }
        return ASLImportResult(source: source, configuration: session.configuration, mapped: session.mapped, unmapped: session.unmapped, notes: session.notes)
    }

    /// Parses and imports: throws `ASLDefinitionError` for invalid ASL, `ASLImportRefusal`
    /// for valid ASL with no faithful mapping.
    public func run(bytes: [UInt8], source: String = "definition") throws -> ASLImportResult {
        try run(try ASLDefinition.parse(bytes, source: source), source: source)
    }
}

/// One import's working state.
struct ImportSession {
    let definition: ASLDefinition
    let mapping: StateMapping
    var configuration: SagaConfiguration
    var refusals: [ASLImportRefusal.Reason] = []
    var notes: [String] = []
    var mapped: [ASLImportResult.MappedState] = []
    var unmapped: [ASLImportResult.UnmappedState] = []
    let byName: [String: ASLState]

    init(definition: ASLDefinition, mapping: StateMapping, configuration: SagaConfiguration) {
        self.definition = definition
        self.mapping = mapping
        self.configuration = configuration
        byName = Dictionary(definition.states.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    mutating func refuse(_ state: ASLState?, _ path: ASLPath, _ reason: String) {
        let entry = ASLImportRefusal.Reason(state: state?.name, path: path, reason: reason)
        if !refusals.contains(entry) { refusals.append(entry) }
    }

    mutating func note(_ text: String) { if !notes.contains(text) { notes.append(text) } }

    mutating func map(_ state: ASLState, as role: StateRole) {
        let entry = ASLImportResult.MappedState(name: state.name, path: state.path, role: role)
        if !mapped.contains(entry) { mapped.append(entry) }
    }

    mutating func leaveOut(_ state: ASLState, why: String) {
        let entry = ASLImportResult.UnmappedState(name: state.name, path: state.path, why: why)
        if !unmapped.contains(entry) { unmapped.append(entry) }
    }

    mutating func run() {
        refuseWhatHasNoCounterpart()
        let forward = reachable(from: [definition.startAt], throughCatchers: false)
        for state in definition.states where forward.contains(state.name) {
            for catcher in state.catchers where forward.contains(catcher.next) {
                refuse(state, catcher.path / "Next", "this Catch leads back into the forward path (\"\(catcher.next)\"): the execution carries on after the error, while here a step that gives up ends the order (compensated or parked)")
            }
        }
        let steps = forwardSteps()
        var undoTasks: [ASLState] = []
        for step in SagaStep.allCases {
            guard let state = steps[step] else { continue }
            var policy = configuration[step]
            (policy.retry, policy.nonRetryable) = retryRules(state)
            policy.timeoutSeconds = state.exactTimeoutSeconds ?? PolicyExplanation.noTimeoutSeconds
            policy.heartbeatSeconds = state.exactHeartbeatSeconds
            if state.timeoutSeconds == nil {
                note("\(state.name) has no TimeoutSeconds: Step Functions' default, 99999999 s (effectively none), is kept as timeout_seconds: 99999999; `lint` flags it.")
            }
            if state.heartbeatSeconds != nil, !state.isCallback, !state.isActivity {
                note("\(state.name) sets HeartbeatSeconds on a request-response task, where Step Functions never expects a heartbeat; here the worker's attempt must report progress that often.")
            }
            compensation(of: step, state: state, into: &policy, undoTasks: &undoTasks)
            configuration.steps[step] = policy
        }
        for step in SagaStep.allCases where steps[step] == nil {
            note("No state maps to \(step.rawValue) (\(step.actionName)): it keeps the policy of the base configuration.")
        }
        compensationPolicy(from: undoTasks)
        if let timeout = definition.timeoutSeconds {
            note("The execution's own TimeoutSeconds (\(Int(timeout)) s) is not carried: here each step has its budget (every attempt to its timeout plus every retry delay) and the watchdog acts on an order stuck past it; `lint` compares the two.")
        }
        let shaping = definition.states.filter { state in ["InputPath", "OutputPath", "ResultPath", "ResultSelector", "Parameters", "Arguments", "Result", "Assign", "Output"].contains { state.json[$0] != nil } }
        if !shaping.isEmpty {
            note("Data paths and payload shaping (Parameters, ResultPath, OutputPath, ResultSelector, Result, intrinsic functions) of \(shaping.count) state\(shaping.count == 1 ? "" : "s") are not carried: every worker receives the whole order and adds its result to the order's history.")
        }
    }

    /// Parallel, Map, Wait, callbacks, `.sync` jobs, run-time timeouts, JSONata, too many retries.
    mutating func refuseWhatHasNoCounterpart() {
        if definition.queryLanguage == .jsonata {
            refuse(nil, definition.path / "QueryLanguage", "JSONata definitions are not supported yet: the importer reads the JSONPath dialect only (re-export the definition with QueryLanguage JSONPath, or write the saga's YAML by hand)")
        }
        for state in definition.states {
            if state.queryLanguage == .jsonata {
                refuse(state, state.path / "QueryLanguage", "JSONata states are not supported yet: the importer reads the JSONPath dialect only")
            }
            switch state.type {
            case .parallel:
                refuse(state, state.path, "Parallel runs branches at the same time; our saga's steps run one after another, each a worker of its own, so branches have no counterpart")
            case .map:
                refuse(state, state.path, state.isDistributedMap
                    ? "a Distributed Map starts child executions over a data set; our saga handles one order per message: produce each item as an order instead"
                    : "Map repeats its states for each item of a list; our saga handles one order per message: produce each item as an order instead")
            case .wait:
                refuse(state, state.path, "Wait holds the execution between steps; our workers hand an order on at once (the only waits are retry delays, on their own topics)")
            case .task:
                if state.isCallback {
                    refuse(state, state.path / "Resource", "a callback (.waitForTaskToken) waits for an outside party to return its task token; our steps finish when their worker's call returns, so it has no counterpart")
                } else if state.isSyncJob {
                    refuse(state, state.path / "Resource", "\(state.resource ?? "") waits for a job or a nested execution to finish; our steps are single calls made by their worker")
                }
                if state.dynamicTimeout {
                    refuse(state, state.path, "the timeout or heartbeat is computed at run time (…SecondsPath or an expression); our policy needs it in the configuration")
                }
                for retrier in state.retry where (retrier.maxAttempts ?? 3) > ImportSession.maxRetryTiers {
                    refuse(state, retrier.path / "MaxAttempts", "MaxAttempts \(retrier.maxAttempts ?? 0) is more than our \(ImportSession.maxRetryTiers) retry tiers (each tier is a topic)")
                }
            case .choice, .pass, .succeed, .fail:
                break
            }
        }
    }

    static let maxRetryTiers = ASLImport.maxRetryTiers

    /// States reachable from `starts` by transitions (and, if asked, catchers).
    func reachable(from starts: [String], throughCatchers: Bool) -> Set<String> {
        var reached = Set(starts.filter { byName[$0] != nil })
        var queue = Array(reached)
        while let name = queue.popLast() {
            guard let state = byName[name] else { continue }
            let targets = state.transitions + (throughCatchers ? state.catchers.map(\.next) : [])
            for target in targets where byName[target] != nil && reached.insert(target).inserted { queue.append(target) }
        }
        return reached
    }

    /// The forward path's Task states in order, mapped onto our steps; VIP Choices read.
    mutating func forwardSteps() -> [SagaStep: ASLState] {
        var order: [ASLState] = []
        var visited: Set<String> = []
        var current: String? = definition.startAt
        while let name = current, let state = byName[name] {
            guard visited.insert(name).inserted else {
                refuse(state, state.path, "the forward path loops back to \"\(name)\"; our saga's steps run once each, in order")
                break
            }
            current = state.isEnd ? nil : state.next
            switch state.type {
            case .task:
                order.append(state)
            case .choice:
                current = priorityChoice(state)
            case .fail:
                note("The forward path reaches Fail state \"\(state.name)\" without an error: here an order that passes its steps completes.")
            default:
                break
            }
        }
        var steps: [SagaStep: ASLState] = [:]
        var lastStep: (SagaStep, ASLState)?
        for state in order {
            let explicit = mapping[state.name]
            switch explicit ?? StateRole.guessForward(state).map(StateRole.step) {
            case .step(let step)?:
                map(state, as: .step(step))
                if let other = steps[step] {
                    refuse(state, state.path, "both \"\(other.name)\" and \"\(state.name)\" map to \(step.rawValue); give one of them another role with --map (for example '\(state.name)=skip')")
                    continue
                }
                if let (previous, previousState) = lastStep, previous > step {
                    refuse(state, state.path, "maps to \(step.rawValue) but comes after \"\(previousState.name)\" (\(previous.rawValue)); our saga runs payment → inventory → shipping → notification")
                }
                steps[step] = state
                lastStep = (step, state)
            case .skip?:
                map(state, as: .skip)
            case let role?:
                refuse(state, state.path, "--map makes it \(role), but it is on the forward path, not behind a Catch")
            case nil:
                leaveOut(state, why: "no step matches its name or function; map it with --map '\(state.name)=payment' (or inventory, shipping, notification, skip)")
            }
        }
        return steps
    }

    /// A Choice on the order's tier or amount sets the VIP threshold, and its branches must
    /// meet again (VIP orders take the same steps here, on priority topics). Returns where
    /// the forward path goes on.
    mutating func priorityChoice(_ state: ASLState) -> String? {
        var threshold: Double?
        var understood = true
        var tested = false
        func read(_ rule: JSONValue) {
            if case .array(let any)? = rule["Or"] {
                for inner in any { read(inner) }
                return
            }
            if case .array(let all)? = rule["And"] {
                // `IsPresent` guards beside one tier or amount test (the exported form).
                for inner in all where inner["IsPresent"] == nil { read(inner) }
                return
            }
            guard case .string(let variable)? = rule["Variable"] else { understood = false; return }
            let name = variable.lowercased()
            if name.contains("tier"), case .string(let value)? = rule["StringEquals"], value.lowercased() == "vip" { tested = true; return }
            if name.contains("amount") || name.contains("total") {
                if case .number(let n)? = rule["NumericGreaterThan"] { threshold = n; tested = true; return }
                if case .number(let n)? = rule["NumericGreaterThanEquals"] {
                    threshold = n
                    tested = true
                    note("\(state.name) sends orders of \(NumberText.of(n)) and more to the VIP branch; here VIP means an amount above the threshold, so exactly \(NumberText.of(n)) rides standard.")
                    return
                }
            }
            understood = false
        }
        for rule in state.choices { read(rule.json) }
        guard understood, tested else {
            refuse(state, state.path, "a Choice on anything but the order's tier or amount: our saga branches only to route VIP orders (tier vip, or amount above a threshold), which take the same steps on priority topics")
            return nil
        }
        func landing(_ name: String) -> String {
            var name = name
            var seen: Set<String> = []
            while let s = byName[name], s.type == .pass, !s.isEnd, let next = s.next, seen.insert(name).inserted { name = next }
            return name
        }
        let targets = Set((state.choices.map(\.next) + [state.defaultNext].compactMap { $0 }).map(landing))
        guard targets.count == 1, let target = targets.first else {
            refuse(state, state.path, "VIP and standard orders take different states (\(targets.sorted().joined(separator: ", "))); here VIP orders take the same steps, only on priority topics")
            return nil
        }
        if let threshold {
            guard (0...SagaConfiguration.maxVIPAmountThreshold).contains(threshold) else {
                refuse(state, state.path, "the VIP amount threshold \(NumberText.of(threshold)) is outside 0 to \(NumberText.of(SagaConfiguration.maxVIPAmountThreshold))")
                return nil
            }
            configuration.vipAmountThreshold = threshold
        }
        map(state, as: .skip)
        note("\(state.name) routes VIP orders: tier vip always, and amounts above \(NumberText.of(configuration.vipAmountThreshold)) (vip.amount_threshold); VIP orders ride the .priority topics.")
        return target
    }

    /// A task's retriers as our rules; `MaxAttempts: 0` on errors no earlier retrier takes
    /// becomes `non_retryable`.
    mutating func retryRules(_ state: ASLState) -> ([RetryRule], [String]) {
        var rules: [RetryRule] = []
        var nonRetryable: [String] = []
        for retrier in state.retry {
            let names = ASLErrorName.ours(retrier.errorEquals)
            if retrier.errorEquals.contains("States.TaskFailed") {
                note("\(state.name): States.TaskFailed matches every error but States.Timeout in Step Functions, business errors included; here it is TransientError and HeartbeatTimeout. Name business errors (CardDeclined, OutOfStock) to retry or compensate them.")
            }
            if retrier.maxAttempts == 0 {
                let taken = names.filter { name in rules.contains { $0.matches(name) } }
                if taken.isEmpty, !names.contains("States.ALL") {
                    nonRetryable += names.filter { !nonRetryable.contains($0) }
                } else {
                    note("\(state.name): the retrier at \(retrier.path) (MaxAttempts 0) is left out: an earlier retrier already takes \(taken.joined(separator: ", ")).")
                }
                continue
            }
            var rule = retrier.rule
            rule.maxAttempts = min(rule.maxAttempts, ImportSession.maxRetryTiers)
            rules.append(rule)
        }
        return (rules, nonRetryable)
    }

    /// A catcher's chain: the undo tasks in order, and how it ends.
    struct Chain: Equatable {
        var undo: [SagaStep] = []
        var tasks: [String] = []
        var parks = false
        var endsInSuccess = false
    }

    mutating func chain(from start: String, catcher: ASLCatcher, undoTasks: inout [ASLState]) -> Chain {
        var chain = Chain()
        var current: String? = start
        var seen: Set<String> = []
        while let name = current, let state = byName[name], seen.insert(name).inserted {
            current = state.isEnd ? nil : state.next
            if state.isEnd { chain.endsInSuccess = true }
            switch state.type {
            case .task:
                let explicit = mapping[state.name]
                switch explicit ?? StateRole.guessUndo(state) {
                case .undo(let step)?:
                    map(state, as: .undo(step))
                    if !chain.undo.contains(step) { chain.undo.append(step) }
                    chain.tasks.append(state.name)
                    if !undoTasks.contains(where: { $0.name == state.name }) { undoTasks.append(state) }
                case .manualReview?:
                    map(state, as: .manualReview)
                    chain.parks = true
                case .skip?, .step(.notification)?:
                    map(state, as: .skip)
                case .step(let step)?:
                    refuse(state, state.path, "--map makes it \(step.rawValue), but it runs behind a Catch (\(catcher.path)), where only undos, notices and manual review belong")
                case nil:
                    if StateRole.guessForward(state) == .notification {
                        map(state, as: .skip)
                        note("\(state.name) (behind a Catch) notifies: here compensation always ends with one failure notice to the customer, so it is not carried as a step.")
                    } else {
                        leaveOut(state, why: "runs behind a Catch but matches no undo (refund, release, cancel shipment); map it with --map '\(state.name)=undo:payment' (or undo:inventory, undo:shipping, manual-review, skip)")
                    }
                }
            case .choice:
                refuse(state, state.path, "a Choice behind a Catch: compensation here is one list of undos per step, without branches")
                current = nil
            case .succeed:
                chain.endsInSuccess = true
            case .fail, .pass, .wait, .parallel, .map:
                break
            }
        }
        return chain
    }

    /// `compensate_on`, `undo` and `on_exhausted` from a step's catchers.
    mutating func compensation(of step: SagaStep, state: ASLState, into policy: inout StepPolicy, undoTasks: inout [ASLState]) {
        var compensating: [(catcher: ASLCatcher, chain: Chain)] = []
        var parksEverything = false
        var sawParking = false
        for catcher in state.catchers {
            let chain = chain(from: catcher.next, catcher: catcher, undoTasks: &undoTasks)
            if chain.endsInSuccess {
                note("\(state.name): the Catch at \(catcher.path) ends the execution as a success; here a compensated order ends compensated.")
            }
            if catcher.errorEquals.contains("States.TaskFailed") {
                note("\(state.name): the Catch on States.TaskFailed also catches business errors in Step Functions; here it is TransientError and HeartbeatTimeout. Add business errors to compensate_on, or use States.ALL.")
            }
            if chain.parks {
                sawParking = true
                if !chain.undo.isEmpty {
                    refuse(state, catcher.path, "this Catch undoes \(chain.undo.map(\.rawValue).joined(separator: ", ")) and then parks for manual review; here a failure either compensates or parks")
                } else if catcher.errorEquals.contains("States.ALL"), compensating.isEmpty {
                    parksEverything = true
                }
                continue
            }
            if let first = compensating.first, first.chain.undo != chain.undo {
                refuse(state, catcher.path, "its catchers undo different things (\(first.chain.undo.map(\.rawValue)) at \(first.catcher.path), \(chain.undo.map(\.rawValue)) here); a step has one undo list here")
            }
            if sawParking {
                refuse(state, catcher.path, "an earlier catcher parks for manual review and this one compensates; here the errors that compensate are listed and all others park, so parking catchers must come last")
            }
            compensating.append((catcher, chain))
        }
        if parksEverything {
            policy.onExhausted = .park
            policy.compensateOn = StepPolicy.compensateOnEveryError
            policy.undo = nil
            return
        }
        policy.onExhausted = .compensate
        policy.compensateOn = ASLErrorName.ours(compensating.flatMap(\.catcher.errorEquals))
        if let undo = compensating.first?.chain.undo {
            policy.undo = undo == step.undoOrderOnFailure ? nil : undo
        } else {
            policy.undo = nil
        }
    }

    /// The compensation policy from the undo tasks' Retry, TimeoutSeconds and
    /// HeartbeatSeconds: theirs if they agree, the weakest (the soonest to give up) if not.
    mutating func compensationPolicy(from tasks: [ASLState]) {
        guard !tasks.isEmpty else {
            note("No undo task (refund, release, cancel shipment) behind any Catch: the compensation policy is the base configuration's.")
            return
        }
        var policies: [(name: String, policy: StepPolicy)] = []
        for task in tasks {
            var policy = configuration.compensation
            (policy.retry, policy.nonRetryable) = retryRules(task)
            policy.timeoutSeconds = task.exactTimeoutSeconds ?? PolicyExplanation.noTimeoutSeconds
            policy.heartbeatSeconds = task.exactHeartbeatSeconds
            policies.append((task.name, policy))
            let exits = task.catchers.contains { catcher in
                catcher.errorEquals.contains("States.ALL") && (byName[catcher.next].map { mapping[$0.name] == .manualReview || StateRole.guessUndo($0) == .manualReview } ?? false)
            }
            if !exits {
                note("\(task.name) has no Catch on States.ALL to a manual-review state: in Step Functions a failure there ends the chain with the rest not undone; here compensation past its retries always parks the order in orders.manual-review (safer than the definition; `lint --asl` reports the gap).")
            }
        }
        func strength(_ p: StepPolicy) -> (Int, Double) { (p.retry.map(\.maxAttempts).max() ?? 0, p.timeoutSeconds) }
        let weakest = policies.min { strength($0.policy) < strength($1.policy) }!
        if policies.contains(where: { $0.policy != weakest.policy }) {
            note("The undo tasks' policies differ (\(policies.map(\.name).joined(separator: ", "))); compensation takes the weakest, \(weakest.name)'s, since one policy serves every undo here.")
        }
        configuration.compensation = weakest.policy
    }
}
