import SagaDomain

/// One state machine (a definition, or a branch inside one) read as a saga: which states run
/// forward and in what order, what each forward task leaves behind, which tasks undo what.
/// Works on any definition, mapped onto our steps or not, so `lint --asl` can speak about
/// definitions the importer refuses.
struct ASLSagaGraph {
    /// What a task leaves behind that may need undoing.
    struct Effect: Hashable {
        var state: String
        /// Its place in the forward order (breadth first from StartAt).
        var order: Int
        /// Charge, reservation or shipment, when the names say so.
        var domain: SagaStep?
        /// The nouns of its name (`flight`, `order`), to pair it with an undo when no domain fits.
        var nouns: Set<String>

        /// "ValidatePayment (the charge)" or "ReserveFlight".
        var label: String { domain.flatMap(\.effectName).map { "\(state) (\($0))" } ?? state }
    }

    enum Kind {
        case effect(Effect)
        case notification
        case read
        case manualReview
    }

    /// Where a catcher's path goes: the tasks it runs, in order, and how it ends.
    struct Chain {
        var undoTasks: [ASLState] = []
        var alerts = false
        var endsInSuccess = false
    }

    let machine: ASLDefinition
    let mapping: StateMapping
    let byName: [String: ASLState]
    /// Forward states (reachable from StartAt without an error) in breadth-first order.
    let forward: [ASLState]
    let forwardNames: Set<String>
    let predecessors: [String: [String]]

    init(_ machine: ASLDefinition, mapping: StateMapping) {
        self.machine = machine
        self.mapping = mapping
        byName = Dictionary(machine.states.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var order: [ASLState] = []
        var seen: Set<String> = []
        var queue = [machine.startAt]
        var predecessors: [String: [String]] = [:]
        var i = 0
        if byName[machine.startAt] != nil { seen.insert(machine.startAt) } else { queue = [] }
        while i < queue.count {
            let state = byName[queue[i]]!
            i += 1
            order.append(state)
            for target in state.transitions where byName[target] != nil {
                predecessors[target, default: []].append(state.name)
                if seen.insert(target).inserted { queue.append(target) }
            }
        }
        forward = order
        forwardNames = seen
        self.predecessors = predecessors
        effects = order.enumerated().compactMap { i, state in if case .effect(let e) = kind(of: state, order: i) { e } else { nil } }
    }

    static let stopWords: Set<String> = [
        "process", "reserve", "confirm", "cancel", "refund", "release", "restock", "create", "update", "set", "send", "sending",
        "get", "put", "save", "validate", "prepare", "notify", "charge", "debit", "credit", "delete", "remove", "book", "run",
        "call", "invoke", "queue", "emit", "write", "read", "list", "start", "complete", "mark", "handle", "check", "new",
        "add", "pick", "deliver", "ddb", "dynamodb", "sqs", "sns", "lambda", "function", "llt", "status", "successful",
        "unsuccessful", "success", "failure", "failed", "fail", "error", "event", "events", "the", "and", "for", "with",
        "bus", "service", "https", "endpoint", "third", "party", "reservation", "payment", "inventory", "shipment",
        "shipping", "notification", "customer", "err", "task", "step", "state", "item", "using", "your",
    ]

    /// Lower-case words of a name: split at non-letters and at lower→upper case changes.
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var previousLower = false
        for c in text {
            if c.isLetter {
                if c.isUppercase, previousLower, !current.isEmpty { words.append(current); current = "" }
                current.append(Character(c.lowercased()))
                previousLower = c.isLowercase
            } else {
                if !current.isEmpty { words.append(current); current = "" }
                previousLower = false
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    static func nouns(of state: ASLState) -> Set<String> {
        var texts = [state.name]
        if case .string(let function)? = state.parameters?["FunctionName"] { texts.append(String(function.split(separator: ":").last ?? "")) }
        return Set(texts.flatMap(words).filter { $0.count > 2 && !stopWords.contains($0) })
    }

    static func isRead(_ state: ASLState) -> Bool {
        let resource = (state.resource ?? "").lowercased()
        let action = resource.split(separator: ":").last.map(String.init) ?? ""
        if ["getitem", "query", "scan", "getjobrun"].contains(action) { return true }
        if resource.contains(":aws-sdk:"), ["get", "list", "describe", "batchget"].contains(where: action.hasPrefix) { return true }
        let first = words(state.name).first ?? ""
        return ["get", "list", "describe", "fetch", "lookup", "query"].contains(first)
    }

    func kind(of state: ASLState, order: Int) -> Kind {
        // A Parallel or Map is linted inside; what it does is its branches' effects.
        guard state.type == .task else { return .read }
        switch mapping[state.name] {
        case .step(.notification)?: return .notification
        case .step(let step)?: return .effect(Effect(state: state.name, order: order, domain: step, nouns: Self.nouns(of: state)))
        case .manualReview?: return .manualReview
        case .skip?, .undo?: return .read
        case nil: break
        }
        if StateRole.guessUndo(state) == .manualReview { return .manualReview }
        if Self.isRead(state) { return .read }
        let domain = StateRole.guessForward(state)
        if domain == .notification { return .notification }
        if domain == nil, let resource = state.resource, resource.contains(":::sqs:") || resource.contains(":::events:") { return .notification }
        let nouns = Self.nouns(of: state)
        if domain == nil, nouns.isEmpty { return .read }
        return .effect(Effect(state: state.name, order: order, domain: domain, nouns: nouns))
    }

    /// The forward effects in order.
    private(set) var effects: [Effect] = []

    /// Effects of the forward states that can run before `name` (its ancestors), in order.
    func effects(before name: String) -> [Effect] {
        var ancestors: Set<String> = []
        var queue = predecessors[name] ?? []
        while let next = queue.popLast() {
            if ancestors.insert(next).inserted { queue += predecessors[next] ?? [] }
        }
        ancestors.remove(name)
        return effects.filter { ancestors.contains($0.state) }
    }

    func effect(of name: String) -> Effect? { effects.first { $0.state == name } }

    /// The step an undo task undoes, when its names say so.
    func undoDomain(_ state: ASLState) -> SagaStep? {
        if case .undo(let step)? = mapping[state.name] { return step }
        if case .undo(let step)? = StateRole.guessUndo(state) { return step }
        let forward = StateRole.guessForward(state)
        return forward == .notification ? nil : forward
    }

    /// Whether `task` undoes `effect`: the same step by their names (and, when both name
    /// something more, the same thing: `CancelFlightReservation` undoes `ReserveFlight`, not
    /// `ReserveCarRental`), or failing a step, a noun in common.
    func undoes(_ task: ASLState, _ effect: Effect) -> Bool {
        let nouns = Self.nouns(of: task)
        if let undo = undoDomain(task), let done = effect.domain {
            return undo == done && (nouns.isEmpty || effect.nouns.isEmpty || !nouns.isDisjoint(with: effect.nouns))
        }
        return !nouns.isDisjoint(with: effect.nouns)
    }

    /// Follows a path from `start` to its end: a catcher's (`fromCatcher`, where reaching
    /// the forward path again means the execution carries on as if nothing failed) or a
    /// Choice branch's (whose states are forward states themselves).
    func chain(from start: String, fromCatcher: Bool) -> Chain {
        var chain = Chain()
        var current: String? = start
        var seen: Set<String> = []
        while let name = current, let state = byName[name], seen.insert(name).inserted {
            if fromCatcher, forwardNames.contains(name) {
                chain.endsInSuccess = true
                break
            }
            switch state.type {
            case .task, .parallel, .map:
                switch kind(of: state, order: 0) {
                case .manualReview, .notification: chain.alerts = true
                case .read, .effect: if !Self.isRead(state) { chain.undoTasks.append(state) }
                }
            case .succeed: chain.endsInSuccess = true
            default: break
            }
            if state.isEnd { chain.endsInSuccess = true }
            current = state.isEnd ? nil : (state.next ?? state.defaultNext ?? state.choices.first?.next)
        }
        return chain
    }

    /// Whether a path's states are named for a failure (`Set Shipping Status: Unsuccessful`,
    /// `DDB CancelOrder`): a Choice branch that compensates by status rather than by Catch.
    func isFailurePath(from start: String) -> Bool {
        var current: String? = start
        var seen: Set<String> = []
        while let name = current, let state = byName[name], seen.insert(name).inserted {
            let text = name.lowercased()
            if ["fail", "unsuccessful", "error", "cancel", "reject", "declin", "abort"].contains(where: text.contains) { return true }
            current = state.isEnd ? nil : (state.next ?? state.defaultNext)
        }
        return false
    }

    /// The nearest work state before `name` on the forward path (through Pass and Choice).
    func failingTask(before name: String) -> ASLState? {
        var queue = predecessors[name] ?? []
        var seen: Set<String> = []
        while !queue.isEmpty {
            let next = queue.removeFirst()
            guard seen.insert(next).inserted, let state = byName[next] else { continue }
            if [.task, .parallel, .map].contains(state.type) { return state }
            queue += predecessors[next] ?? []
        }
        return nil
    }
}
