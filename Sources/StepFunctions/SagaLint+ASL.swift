import SagaDomain

extension SagaLint {
    /// Findings for a Step Functions definition, state by state with JSON paths: the same
    /// questions as for a configuration (what does a failure here leave behind, are the undos
    /// retried and do they have a way out, are there timeouts), asked of the definition's own
    /// graph, so definitions the importer refuses are linted too. Branches of Parallel and
    /// item processors of Map are linted as machines of their own. A definition the importer
    /// refuses gets one `not-importable` info saying why.
    public func findings(for definition: ASLDefinition, mapping: StateMapping = StateMapping()) -> [LintFinding] {
        var findings = machineFindings(definition, mapping: mapping, isTopLevel: true)
        do {
            _ = try ASLImport(mapping: mapping).run(definition)
        } catch {
            let reasons = error.reasons
            let shown = reasons.prefix(3).map(\.description).joined(separator: "; ")
            findings.append(LintFinding(.info, .notImportable, "definition", path: .root,
                "`asl import` refuses it (\(reasons.count) reason\(reasons.count == 1 ? "" : "s")): \(shown)\(reasons.count > 3 ? "; …" : "")"))
        }
        return findings
    }

    func machineFindings(_ machine: ASLDefinition, mapping: StateMapping, isTopLevel: Bool) -> [LintFinding] {
        let graph = ASLSagaGraph(machine, mapping: mapping)
        var findings: [LintFinding] = []
        var undoTasks: [(task: ASLState, later: [ASLState])] = []
        let work = graph.forward.filter { [.task, .parallel, .map].contains($0.type) }

        for state in work {
            let earlier = graph.effects(before: state.name)
            let own = graph.effect(of: state.name)
            let errors = state.catchers.flatMap(\.errorEquals)
            let coversAll = errors.contains("States.ALL") || (errors.contains("States.TaskFailed") && errors.contains("States.Timeout"))
            if !coversAll, !earlier.isEmpty {
                let what = state.catchers.isEmpty ? "no Catch" : "catches only \(errors.joined(separator: ", "))"
                let example = errors.contains("States.Timeout") ? "an error it does not name" : "a States.Timeout or any error it does not name"
                findings.append(LintFinding(Self.severity(earlier), .compensationGap, state.name, path: state.catchers.isEmpty ? state.path : state.path / "Catch",
                    "\(what): \(example) ends the execution with \(Self.list(earlier.map(\.label))) kept, nothing undone"))
            }
            for catcher in state.catchers {
                let chain = graph.chain(from: catcher.next, fromCatcher: true)
                for (i, task) in chain.undoTasks.enumerated() where !undoTasks.contains(where: { $0.task.name == task.name }) {
                    undoTasks.append((task, Array(chain.undoTasks.dropFirst(i + 1))))
                }
                findings += undoFindings(graph, at: state, catcherPath: catcher.path, chain: chain, earlier: earlier, own: own, branch: nil)
                if chain.endsInSuccess {
                    findings.append(LintFinding(.warning, .failureReportedAsSuccess, state.name, path: catcher.path,
                        "the path after this Catch ends the execution as a success (or carries on), so a failed \(state.name) is reported as done"))
                }
            }
        }
        for state in machine.states where state.type != .choice {
            findings += taskFindings(state, isCompensation: !graph.forwardNames.contains(state.name))
        }

        // Compensation by status: a Choice branch named for a failure that ends the order.
        for choice in graph.forward where choice.type == .choice {
            let failing = graph.failingTask(before: choice.name)
            let earlier = graph.effects(before: choice.name).filter { $0.state != failing?.name }
            let branches = choice.choices.map { ($0.next, $0.path) } + (choice.defaultNext.map { [($0, choice.path / "Default")] } ?? [])
            for (target, path) in branches where graph.isFailurePath(from: target) {
                let chain = graph.chain(from: target, fromCatcher: false)
                findings += undoFindings(graph, at: choice, catcherPath: path, chain: chain, earlier: earlier, own: nil, branch: target)
            }
        }

        for (task, later) in undoTasks {
            let retried = task.retry.contains { ($0.maxAttempts ?? 3) > 0 }
            let rest = later.isEmpty ? "its own undo is left half done" : "\(Self.list(later.map(\.name))) never run\(later.count == 1 ? "s" : "")"
            if !retried {
                findings.append(LintFinding(.error, .compensationNoRetry, task.name, path: task.path,
                    "an undo with no Retry: one failure (a gateway timeout) ends the chain and \(rest)"))
            }
            let exits = task.catchers.filter { catcher in
                (catcher.errorEquals.contains("States.ALL")) && graph.chain(from: catcher.next, fromCatcher: true).alerts
            }
            if exits.isEmpty {
                let what = task.catchers.isEmpty ? "no Catch" : "catches only \(task.catchers.flatMap(\.errorEquals).joined(separator: ", ")) to an alert"
                findings.append(LintFinding(.error, .compensationNoExit, task.name, path: task.catchers.isEmpty ? task.path : task.path / "Catch",
                    "\(what): once its retries run out the execution fails, \(rest), and no one is asked to finish (catch States.ALL into a manual-review or alerting state)"))
            }
        }

        for wait in machine.states where wait.type == .wait {
            if let next = wait.next, reachable(graph, from: next).contains(wait.name) {
                findings.append(LintFinding(.warning, .unboundedLoop, wait.name, path: wait.path,
                    "a polling loop through this Wait with no counter: a status it does not expect keeps the execution waiting forever"))
            }
        }

        for state in machine.states where state.type == .parallel || state.type == .map {
            for branch in state.branches { findings += machineFindings(branch, mapping: mapping, isTopLevel: false) }
            if let processor = state.itemProcessor { findings += machineFindings(processor, mapping: mapping, isTopLevel: false) }
        }

        if isTopLevel {
            findings += budgetFindings(machine, work: work)
        }
        return findings
    }

    /// Gaps and order along one compensation path (a catcher's, or a failure branch's).
    func undoFindings(_ graph: ASLSagaGraph, at state: ASLState, catcherPath: ASLPath, chain: ASLSagaGraph.Chain, earlier: [ASLSagaGraph.Effect], own: ASLSagaGraph.Effect?, branch: String?) -> [LintFinding] {
        var findings: [LintFinding] = []
        let missing = earlier.filter { effect in !chain.undoTasks.contains { graph.undoes($0, effect) } }
        let path = branch.map { "the branch to \"\($0)\"" } ?? "this Catch's path"
        let undone = chain.undoTasks.isEmpty ? "undoes nothing" : "runs \(chain.undoTasks.map(\.name).joined(separator: " → "))"
        if !missing.isEmpty {
            findings.append(LintFinding(Self.severity(missing), .compensationGap, state.name, path: catcherPath,
                "\(path) \(undone) and ends without undoing \(Self.list(missing.map(\.label)))"))
        }
        if let own, own.domain != nil, !chain.undoTasks.contains(where: { graph.undoes($0, own) }) {
            findings.append(LintFinding(.warning, .compensationGap, state.name, path: catcherPath,
                "\(path) does not undo \(own.label) itself, which may have half-happened (a call whose reply timed out)"))
        }
        // Newest effect first: the undos' effects should come in falling forward order.
        let done = earlier + (own.map { [$0] } ?? [])
        // An undo that covers several effects (a cancel of a reserved and confirmed flight)
        // stands at the first of them.
        let sequence = chain.undoTasks.compactMap { task in done.filter { graph.undoes(task, $0) }.map(\.order).min() }
        if sequence != sequence.sorted(by: >) {
            let names = chain.undoTasks.filter { task in done.contains { graph.undoes(task, $0) } }.map(\.name)
            findings.append(LintFinding(.warning, .undoOrder, state.name, path: catcherPath,
                "\(path) undoes in the order \(names.joined(separator: " → ")), not newest effect first"))
        }
        return findings
    }

    /// Retry, timeout, idempotency, heartbeat and resource findings of one forward state.
    /// `isCompensation`: the state runs behind a Catch (an undo, an alert), where retrying
    /// every error is the point.
    func taskFindings(_ state: ASLState, isCompensation: Bool) -> [LintFinding] {
        var findings: [LintFinding] = []
        let rules = state.retry.map(\.rule)
        findings += Self.retryFindings(rules, nonRetryable: [], subject: state.name, path: state.path, isCompensation: isCompensation)
        guard state.type == .task else { return findings }
        findings += Self.timeoutFindings(timeout: state.exactTimeoutSeconds, heartbeat: state.exactHeartbeatSeconds, isCallback: state.isCallback, subject: state.name, path: state.path)
        let resource = state.resource ?? ""
        let isActivity = state.isActivity
        if state.heartbeatSeconds != nil, !state.isCallback, !isActivity {
            findings.append(LintFinding(.warning, .heartbeatWithoutCallback, state.name, path: state.path / "HeartbeatSeconds",
                "HeartbeatSeconds on a request-response task means nothing: only callbacks and activities send heartbeats"))
        }
        let lambdaFunction = resource.hasPrefix("arn:aws:lambda:") && resource.contains(":function:")
        if !resource.hasPrefix("arn:aws:states:::"), !lambdaFunction, !isActivity {
            let hint = resource.contains("lambda") ? " (did you mean arn:aws:states:::lambda:invoke?)" : resource.contains("sns") ? " (did you mean arn:aws:states:::sns:publish?)" : ""
            findings.append(LintFinding(.warning, .unknownResource, state.name, path: state.path / "Resource",
                "\(resource) is not a Step Functions resource ARN, so Step Functions rejects the definition\(hint)"))
        }
        let repeatsEffect = lambdaFunction || [":::lambda:", ":::sqs:", ":::sns:", ":::events:", ":::apigateway:", ":::http:"].contains { resource.contains($0) } || resource.hasPrefix("arn:aws:lambda:")
        if repeatsEffect, state.retry.contains(where: { ($0.maxAttempts ?? 3) > 0 }), !Self.hasIdempotencyHint(state.parameters) {
            findings.append(LintFinding(.warning, .retryWithoutIdempotencyKey, state.name, path: state.path / "Retry",
                state.isCallback
                    ? "retried, and retrying a callback sends its message again: nothing in its parameters lets the receiver drop the duplicate"
                    : "retried, but nothing in its parameters is an idempotency key: the function must drop a repeated call on its own (a retried charge must not charge twice)"))
        }
        for (i, retrier) in state.retry.enumerated() {
            for name in retrier.errorEquals {
                let optimised = resource.hasPrefix("arn:aws:states:::dynamodb:")
                let sdk = resource.hasPrefix("arn:aws:states:::aws-sdk:dynamodb:")
                if (optimised && name.hasPrefix("DynamoDb.")) || (sdk && name.hasPrefix("DynamoDB.")) {
                    let right = optimised ? "DynamoDB." : "DynamoDb."
                    findings.append(LintFinding(.warning, .errorNameNeverRaised, state.name, path: (state.path / "Retry").index(i) / "ErrorEquals",
                        "\(name) is never raised by \(resource) (its errors are named \(right)…), so this retrier never matches"))
                }
            }
        }
        return findings
    }

    /// The execution's own TimeoutSeconds against each task's retries and the whole saga.
    func budgetFindings(_ machine: ASLDefinition, work: [ASLState]) -> [LintFinding] {
        var findings: [LintFinding] = []
        let parts = work.filter { $0.type == .task }.map { ($0, Self.worstCase(timeout: $0.exactTimeoutSeconds, rules: $0.retry.map(\.rule))) }
        if let limit = machine.timeoutSeconds {
            for (state, _) in parts {
                let rules = state.retry.map(\.rule)
                let delays = rules.max { $0.maxAttempts < $1.maxAttempts }?.totalDelaySeconds ?? 0
                let attempt = state.exactTimeoutSeconds ?? .infinity
                if delays > 0, attempt + delays > limit {
                    findings.append(LintFinding(.error, .timeoutBelowRetryBudget, state.name, path: state.path,
                        "the execution's TimeoutSeconds (\(NumberText.of(limit)) s) is shorter than one attempt plus its retries' backoff (\(NumberText.of(attempt)) + \(NumberText.of(delays)) = \(NumberText.of(attempt + delays)) s): the execution times out mid-retry, and that timeout cannot be caught, so nothing is compensated"))
                }
            }
        }
        guard !parts.isEmpty else { return findings }
        let total = parts.map(\.1.seconds).reduce(0, +)
        let arithmetic = parts.map { "\($0.0.name): \($0.1.arithmetic)" }.joined(separator: "; ")
        findings.append(LintFinding(.info, .sagaWorstCase, "definition", path: .root,
            "worst case \(NumberText.of(total)) s, every forward task's attempts to their timeouts plus every retry delay: \(arithmetic)"))
        if let limit = machine.timeoutSeconds, total > limit {
            findings.append(LintFinding(.error, .sagaOverBudget, "definition", path: ASLPath.root / "TimeoutSeconds",
                "the worst case, \(NumberText.of(total)) s, is above the execution's own TimeoutSeconds (\(NumberText.of(limit)) s), which fires mid-saga and cannot be caught: nothing is compensated"))
        } else if machine.timeoutSeconds == nil, let budget = sagaBudgetSeconds, total > budget {
            findings.append(LintFinding(.warning, .sagaOverBudget, "definition", path: .root,
                "the worst case, \(NumberText.of(total)) s, is above the saga's budget of \(NumberText.of(budget)) s"))
        }
        return findings
    }

    func reachable(_ graph: ASLSagaGraph, from start: String) -> Set<String> {
        var reached: Set<String> = [start]
        var queue = [start]
        while let name = queue.popLast() {
            for target in graph.byName[name]?.transitions ?? [] where reached.insert(target).inserted { queue.append(target) }
        }
        return reached
    }

    /// Something in the parameters that names an idempotency key or a deduplication id.
    static func hasIdempotencyHint(_ parameters: JSONValue?) -> Bool {
        guard let parameters else { return false }
        let markers = ["idempot", "clienttoken", "clientrequesttoken", "deduplicationid", "requestid", "$$.execution.id", "$$.execution.name"]
        func search(_ value: JSONValue, depth: Int) -> Bool {
            guard depth < 64 else { return false }
            switch value {
            case .string(let s): return markers.contains { s.lowercased().contains($0) }
            case .array(let items): return items.contains { search($0, depth: depth + 1) }
            case .object(let members): return members.contains { member in markers.contains { member.key.lowercased().contains($0) } || search(member.value, depth: depth + 1) }
            default: return false
            }
        }
        return search(parameters, depth: 0)
    }

    /// An error when money, stock or a shipment is kept; a warning for other effects.
    static func severity(_ effects: [ASLSagaGraph.Effect]) -> LintFinding.Severity {
        effects.contains { $0.domain != nil } ? .error : .warning
    }
}
