import SagaDomain

extension ASLDefinition {
    /// How deep JSON may nest in a definition: far beyond any real one (the AWS samples stay
    /// under 15), and shallow enough that the recursive reads stay well inside a thread's stack.
    public static let maxNestingDepth = 200

    /// Reads and validates a definition. Anything wrong is thrown as one
    /// `ASLDefinitionError` that lists every problem with its JSON path, the way statelint
    /// reports: not JSON, not an object, no `StartAt`, a transition to a missing state,
    /// unreachable states, `States.ALL` not alone or not last, duplicate names or keys,
    /// wrong field types, a state with neither `Next` nor `End`, JSONata fields in a JSONPath
    /// state. Never traps, whatever the bytes.
    public static func parse(_ bytes: [UInt8], source: String = "definition") throws(ASLDefinitionError) -> ASLDefinition {
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes, maxDepth: maxNestingDepth)
        } catch {
            throw ASLDefinitionError(source: source, problems: [ASLProblem(.notJSON, "not JSON: \(error.message) (byte \(error.offset))", at: .root)])
        }
        var parser = ASLParser()
        let definition = parser.machine(json, path: .root, inherited: .jsonPath, isTopLevel: true)
        parser.duplicateKeys(json, path: .root, depth: 0)
        guard parser.problems.isEmpty, let definition else {
            throw ASLDefinitionError(source: source, problems: parser.problems)
        }
        return definition
    }

    public static func parse(_ text: String, source: String = "definition") throws(ASLDefinitionError) -> ASLDefinition {
        try parse(Array(text.utf8), source: source)
    }
}

/// Walks a definition's JSON, building the model and noting every problem on the way.
struct ASLParser {
    var problems: [ASLProblem] = []
    /// Paths of `States` objects: their duplicate keys are reported as duplicate state names.
    var statesPaths: Set<ASLPath> = []

    static let stateFields: Set<String> = [
        "Type", "Comment", "Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector",
        "Resource", "Retry", "Catch", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath",
        "Credentials", "Choices", "Default", "Seconds", "SecondsPath", "Timestamp", "TimestampPath", "Branches",
        "ItemProcessor", "Iterator", "ItemsPath", "ItemSelector", "MaxConcurrency", "MaxConcurrencyPath", "ItemReader",
        "ItemBatcher", "ResultWriter", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
        "ToleratedFailureCount", "ToleratedFailureCountPath", "Label", "Items", "Result", "Error", "ErrorPath", "Cause",
        "CausePath", "QueryLanguage", "Arguments", "Output", "Assign",
    ]
    static let jsonataOnlyFields: Set<String> = ["Arguments", "Output", "Items"]
    /// ASL's bound for TimeoutSeconds, HeartbeatSeconds, IntervalSeconds and MaxAttempts.
    static let maxSeconds: Double = 99_999_999

    mutating func problem(_ code: ASLProblem.Code, _ message: String, at path: ASLPath) {
        problems.append(ASLProblem(code, message, at: path))
    }

    mutating func machine(_ json: JSONValue, path: ASLPath, inherited: ASLDefinition.QueryLanguage, isTopLevel: Bool) -> ASLDefinition? {
        guard case .object(let members) = json else {
            problem(.schema, isTopLevel ? "a definition must be a JSON object, not \(json.typeName)" : "must be an object with StartAt and States, not \(json.typeName)", at: path)
            return nil
        }
        let allowed: Set<String> = isTopLevel
            ? ["Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage"]
            : ["Comment", "StartAt", "States", "ProcessorConfig", "QueryLanguage"]
        for member in members where !allowed.contains(member.key) {
            problem(.schema, "field '\(member.key)' is not allowed here (expected \(allowed.sorted().joined(separator: ", ")))", at: path / member.key)
        }
        let comment = string(json, "Comment", at: path)
        let language = queryLanguage(json, at: path) ?? inherited
        let timeout = isTopLevel ? seconds(json, "TimeoutSeconds", at: path, minimum: 1) : nil
        var startAt: String?
        switch json["StartAt"] {
        case nil: problem(.schema, "missing 'StartAt': the name of the first state", at: path / "StartAt")
        case .string(let s)?: startAt = s
        case let other?: problem(.schema, "'StartAt' must be a string, not \(other.typeName)", at: path / "StartAt")
        }
        var states: [ASLState] = []
        var names: [String] = []
        var seen: Set<String> = []
        let statesPath = path / "States"
        switch json["States"] {
        case nil:
            problem(.schema, "missing 'States': an object of named states", at: statesPath)
        case .object(let entries)?:
            statesPaths.insert(statesPath)
            if entries.isEmpty { problem(.schema, "'States' is empty", at: statesPath) }
            for (name, value) in entries {
                let statePath = statesPath / name
                guard seen.insert(name).inserted else {
                    problem(.duplicateStateName, "duplicate state name \"\(name)\" (JSON keeps one of them silently)", at: statePath)
                    continue
                }
                names.append(name)
                if let state = self.state(name: name, value, path: statePath, language: language) { states.append(state) }
            }
        case let other?:
            problem(.schema, "'States' must be an object, not \(other.typeName)", at: statesPath)
        }
        guard let startAt else { return nil }
        let known = Set(names)
        if !known.isEmpty, !known.contains(startAt) {
            problem(.missingTransitionTarget, "Missing 'StartAt' target: \(startAt)", at: path / "StartAt")
        }
        for state in states {
            if let next = state.next, !known.contains(next) {
                problem(.missingTransitionTarget, "Missing 'Next' target: \(next)", at: state.path / "Next")
            }
            if let target = state.defaultNext, !known.contains(target) {
                problem(.missingTransitionTarget, "Missing 'Default' target: \(target)", at: state.path / "Default")
            }
            for rule in state.choices where !known.contains(rule.next) {
                problem(.missingTransitionTarget, "Missing 'Next' target: \(rule.next)", at: rule.path / "Next")
            }
            for catcher in state.catchers where !known.contains(catcher.next) {
                problem(.missingTransitionTarget, "Missing 'Next' target: \(catcher.next)", at: catcher.path / "Next")
            }
        }
        // Reachability over every transition and catcher, from StartAt.
        if known.contains(startAt) {
            var reached: Set<String> = [startAt]
            var queue = [startAt]
            let byName = Dictionary(states.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            while let name = queue.popLast() {
                guard let state = byName[name] else { continue }
                for target in state.transitions + state.catchers.map(\.next) where known.contains(target) && reached.insert(target).inserted {
                    queue.append(target)
                }
            }
            for name in names where !reached.contains(name) {
                problem(.unreachableState, "State \"\(name)\" is not reachable.", at: statesPath / name)
            }
        }
        return ASLDefinition(path: path, comment: comment, startAt: startAt, timeoutSeconds: timeout, queryLanguage: language, states: states, json: json)
    }

    mutating func state(name: String, _ json: JSONValue, path: ASLPath, language inherited: ASLDefinition.QueryLanguage) -> ASLState? {
        guard case .object(let members) = json else {
            let hint = ["QueryLanguage", "StartAt", "Comment", "TimeoutSeconds", "Version"].contains(name)
                ? " ('\(name)' is a top-level field placed inside States\(name == "QueryLanguage" ? "; JSONata definitions are not supported by the importer" : ""))"
                : ""
            problem(.schema, "a state must be an object, not \(json.typeName)\(hint)", at: path)
            return nil
        }
        for member in members where !Self.stateFields.contains(member.key) {
            problem(.schema, "field '\(member.key)' is not a state field", at: path / member.key)
        }
        var type: ASLStateType?
        switch json["Type"] {
        case nil: problem(.schema, "missing 'Type' (one of \(ASLStateType.allCases.map(\.rawValue).joined(separator: ", ")))", at: path / "Type")
        case .string(let s)?:
            type = ASLStateType(rawValue: s)
            if type == nil { problem(.schema, "unknown Type '\(s)' (expected one of \(ASLStateType.allCases.map(\.rawValue).joined(separator: ", ")))", at: path / "Type") }
        case let other?: problem(.schema, "'Type' must be a string, not \(other.typeName)", at: path / "Type")
        }
        let ownLanguage = queryLanguage(json, at: path)
        let language = ownLanguage ?? inherited
        if language == .jsonPath {
            for member in members where Self.jsonataOnlyFields.contains(member.key) {
                problem(.jsonataFieldInJSONPath, "'\(member.key)' is a JSONata field, but this state uses JSONPath (set QueryLanguage: JSONata, or use \(member.key == "Arguments" ? "Parameters" : member.key == "Output" ? "OutputPath/ResultSelector" : "ItemsPath"))", at: path / member.key)
            }
        }
        var state = ASLState(
            name: name, path: path, type: type ?? .pass, comment: string(json, "Comment", at: path), next: string(json, "Next", at: path),
            isEnd: false, queryLanguage: ownLanguage, resource: nil, parameters: nil, retry: [], catchers: [], timeoutSeconds: nil,
            heartbeatSeconds: nil, dynamicTimeout: false, choices: [], defaultNext: nil, branches: [], itemProcessor: nil,
            isDistributedMap: false, error: nil, json: json)
        switch json["End"] {
        case nil: break
        case .bool(let b)?: state.isEnd = b
        case let other?: problem(.schema, "'End' must be true or false, not \(other.typeName)", at: path / "End")
        }
        guard let type else { return nil }
        let flows: Set<ASLStateType> = [.task, .pass, .wait, .parallel, .map]
        if flows.contains(type) {
            if state.next == nil, !state.isEnd, json["Next"] == nil {
                problem(.missingNextOrEnd, "a \(type.rawValue) state needs 'Next' or 'End': true", at: path)
            } else if state.next != nil, state.isEnd {
                problem(.nextAndEnd, "a state cannot have both 'Next' and 'End': true", at: path)
            }
        } else {
            for field in ["Next", "End"] where json[field] != nil {
                problem(.schema, "a \(type.rawValue) state takes no '\(field)'", at: path / field)
            }
        }
        if [.task, .parallel, .map].contains(type) {
            state.retry = retriers(json, at: path)
            state.catchers = catchers(json, at: path)
        } else {
            for field in ["Retry", "Catch"] where json[field] != nil {
                problem(.schema, "a \(type.rawValue) state takes no '\(field)'", at: path / field)
            }
        }
        switch type {
        case .task:
            state.resource = string(json, "Resource", at: path)
            if json["Resource"] == nil { problem(.schema, "a Task needs 'Resource'", at: path / "Resource") }
            state.parameters = json[language == .jsonata ? "Arguments" : "Parameters"] ?? json["Parameters"] ?? json["Arguments"]
            state.timeoutSeconds = seconds(json, "TimeoutSeconds", at: path, minimum: 1, allowExpression: language == .jsonata)
            state.heartbeatSeconds = seconds(json, "HeartbeatSeconds", at: path, minimum: 1, allowExpression: language == .jsonata)
            for field in ["TimeoutSeconds", "HeartbeatSeconds"] {
                if json[field] != nil, json[field + "Path"] != nil {
                    problem(.schema, "'\(field)' and '\(field)Path' cannot both be set", at: path / (field + "Path"))
                }
                if case .string? = json[field] { state.dynamicTimeout = true }
                if json[field + "Path"] != nil {
                    state.dynamicTimeout = true
                    _ = string(json, field + "Path", at: path)
                }
            }
        case .choice:
            switch json["Choices"] {
            case .array(let rules)? where !rules.isEmpty:
                for (i, rule) in rules.enumerated() {
                    let rulePath = path / "Choices"
                    guard case .object = rule else {
                        problem(.schema, "a choice rule must be an object, not \(rule.typeName)", at: rulePath.index(i))
                        continue
                    }
                    if language == .jsonPath, rule["Condition"] != nil {
                        problem(.jsonataFieldInJSONPath, "'Condition' is a JSONata field, but this state uses JSONPath", at: rulePath.index(i) / "Condition")
                    }
                    switch rule["Next"] {
                    case .string(let next)?: state.choices.append(ASLChoiceRule(path: rulePath.index(i), next: next, json: rule))
                    case nil: problem(.schema, "a choice rule needs 'Next'", at: rulePath.index(i))
                    case let other?: problem(.schema, "'Next' must be a string, not \(other.typeName)", at: rulePath.index(i) / "Next")
                    }
                }
            case .array?: problem(.schema, "'Choices' must not be empty", at: path / "Choices")
            case nil: problem(.schema, "a Choice needs 'Choices'", at: path / "Choices")
            case let other?: problem(.schema, "'Choices' must be an array, not \(other.typeName)", at: path / "Choices")
            }
            state.defaultNext = string(json, "Default", at: path)
        case .wait:
            let fields = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"].filter { json[$0] != nil }
            if fields.count != 1 { problem(.schema, "a Wait needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath", at: path) }
            if case .number? = json["Seconds"] { _ = seconds(json, "Seconds", at: path, minimum: 0) }
        case .parallel:
            switch json["Branches"] {
            case .array(let branches)? where !branches.isEmpty:
                for (i, branch) in branches.enumerated() {
                    if let machine = machine(branch, path: (path / "Branches").index(i), inherited: language, isTopLevel: false) { state.branches.append(machine) }
                }
            case nil: problem(.schema, "a Parallel needs 'Branches'", at: path / "Branches")
            case let other?: problem(.schema, "'Branches' must be a non-empty array, not \(other.typeName)", at: path / "Branches")
            }
        case .map:
            let field = json["ItemProcessor"] != nil ? "ItemProcessor" : "Iterator"
            if let processor = json[field] {
                state.itemProcessor = machine(processor, path: path / field, inherited: language, isTopLevel: false)
                if case .string("DISTRIBUTED")? = processor["ProcessorConfig"]?["Mode"] { state.isDistributedMap = true }
            } else {
                problem(.schema, "a Map needs 'ItemProcessor'", at: path / "ItemProcessor")
            }
        case .fail:
            state.error = string(json, "Error", at: path)
        case .pass, .succeed:
            break
        }
        return state
    }

    mutating func retriers(_ json: JSONValue, at path: ASLPath) -> [ASLRetrier] {
        guard let list = array(json, "Retry", at: path) else { return [] }
        var result: [ASLRetrier] = []
        for (i, item) in list.enumerated() {
            let p = (path / "Retry").index(i)
            guard case .object(let members) = item else {
                problem(.schema, "a retrier must be an object, not \(item.typeName)", at: p)
                continue
            }
            for member in members where !["ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"].contains(member.key) {
                problem(.schema, "field '\(member.key)' is not a retrier field", at: p / member.key)
            }
            let errors = errorEquals(item, at: p, isLast: i == list.count - 1, kind: "retrier")
            var retrier = ASLRetrier(path: p, errorEquals: errors, comment: string(item, "Comment", at: p))
            retrier.intervalSeconds = seconds(item, "IntervalSeconds", at: p, minimum: 1)
            retrier.maxAttempts = seconds(item, "MaxAttempts", at: p, minimum: 0).map { Int($0) }
            retrier.maxDelaySeconds = seconds(item, "MaxDelaySeconds", at: p, minimum: 1)
            switch item["BackoffRate"] {
            case nil: break
            case .number(let rate)? where rate >= 1 && rate <= 1_000_000: retrier.backoffRate = rate
            case let other?: problem(.schema, "'BackoffRate' must be a number from 1.0 up, not \(describe(other))", at: p / "BackoffRate")
            }
            switch item["JitterStrategy"] {
            case nil: break
            case .string(let s)? where s == "FULL" || s == "NONE": retrier.jitterStrategy = s
            case let other?: problem(.schema, "'JitterStrategy' must be \"FULL\" or \"NONE\", not \(describe(other))", at: p / "JitterStrategy")
            }
            result.append(retrier)
        }
        return result
    }

    mutating func catchers(_ json: JSONValue, at path: ASLPath) -> [ASLCatcher] {
        guard let list = array(json, "Catch", at: path) else { return [] }
        var result: [ASLCatcher] = []
        for (i, item) in list.enumerated() {
            let p = (path / "Catch").index(i)
            guard case .object(let members) = item else {
                problem(.schema, "a catcher must be an object, not \(item.typeName)", at: p)
                continue
            }
            for member in members where !["ErrorEquals", "Next", "ResultPath", "Comment", "Output", "Assign"].contains(member.key) {
                problem(.schema, "field '\(member.key)' is not a catcher field", at: p / member.key)
            }
            let errors = errorEquals(item, at: p, isLast: i == list.count - 1, kind: "catcher")
            switch item["Next"] {
            case .string(let next)?: result.append(ASLCatcher(path: p, errorEquals: errors, next: next))
            case nil: problem(.schema, "a catcher needs 'Next'", at: p / "Next")
            case let other?: problem(.schema, "'Next' must be a string, not \(other.typeName)", at: p / "Next")
            }
        }
        return result
    }

    mutating func errorEquals(_ json: JSONValue, at path: ASLPath, isLast: Bool, kind: String) -> [String] {
        let p = path / "ErrorEquals"
        guard let list = array(json, "ErrorEquals", at: path) else {
            if json["ErrorEquals"] == nil { problem(.schema, "a \(kind) needs 'ErrorEquals'", at: p) }
            return []
        }
        if list.isEmpty { problem(.schema, "'ErrorEquals' must not be empty", at: p) }
        var names: [String] = []
        for (i, item) in list.enumerated() {
            guard case .string(let name) = item else {
                problem(.schema, "an error name must be a string, not \(item.typeName)", at: p.index(i))
                continue
            }
            names.append(name)
        }
        if names.contains("States.ALL") {
            if list.count > 1 { problem(.statesAllNotAlone, "States.ALL must appear alone in ErrorEquals", at: p) }
            if !isLast { problem(.statesAllNotLast, "a \(kind) on States.ALL must be the last one (the ones after it can never match)", at: p) }
        }
        return names
    }

    mutating func array(_ json: JSONValue, _ field: String, at path: ASLPath) -> [JSONValue]? {
        switch json[field] {
        case nil: return nil
        case .array(let items)?: return items
        case let other?:
            problem(.schema, "'\(field)' must be an array, not \(other.typeName)", at: path / field)
            return nil
        }
    }

    mutating func string(_ json: JSONValue, _ field: String, at path: ASLPath) -> String? {
        switch json[field] {
        case nil: return nil
        case .string(let s)?: return s
        case let other?:
            problem(.schema, "'\(field)' must be a string, not \(other.typeName)", at: path / field)
            return nil
        }
    }

    /// A whole number within ASL's bounds (JSONata may give an expression string instead).
    mutating func seconds(_ json: JSONValue, _ field: String, at path: ASLPath, minimum: Double, allowExpression: Bool = false) -> Double? {
        switch json[field] {
        case nil: return nil
        case .number(let n)? where n == n.rounded() && n >= minimum && n <= Self.maxSeconds: return n
        case .string(let s)? where allowExpression && s.hasPrefix("{%"): return nil
        case let other?:
            problem(.schema, "'\(field)' must be a whole number from \(Int(minimum)) to \(Int(Self.maxSeconds)), not \(describe(other))", at: path / field)
            return nil
        }
    }

    mutating func queryLanguage(_ json: JSONValue, at path: ASLPath) -> ASLDefinition.QueryLanguage? {
        guard let text = string(json, "QueryLanguage", at: path) else { return nil }
        guard let language = ASLDefinition.QueryLanguage(rawValue: text) else {
            problem(.schema, "'QueryLanguage' must be \"JSONPath\" or \"JSONata\", not \"\(text)\"", at: path / "QueryLanguage")
            return nil
        }
        return language
    }

    func describe(_ value: JSONValue) -> String {
        switch value {
        case .number(let n): "\(n)"
        case .string(let s): "\"\(s.prefix(40))\""
        default: value.typeName
        }
    }

    /// Duplicate keys anywhere (JSON parsers keep one silently); duplicate state names are
    /// reported where the states are read.
    mutating func duplicateKeys(_ json: JSONValue, path: ASLPath, depth: Int) {
        switch json {
        case .object(let members):
            var seen: Set<String> = []
            for (key, value) in members {
                if !seen.insert(key).inserted, !statesPaths.contains(path) {
                    problem(.duplicateKey, "duplicate key '\(key)' (JSON keeps one of them silently)", at: path / key)
                }
                duplicateKeys(value, path: path / key, depth: depth + 1)
            }
        case .array(let items):
            for (i, item) in items.enumerated() { duplicateKeys(item, path: path.index(i), depth: depth + 1) }
        default:
            break
        }
    }
}
