import Foundation
import Yams

extension SagaConfiguration {
    /// The largest `vip.amount_threshold`: far above any order, and small enough to print
    /// as a whole number (explain and graph do).
    public static let maxVIPAmountThreshold: Double = 1e15

    /// Loads a YAML configuration; unknown keys, wrong types and bad values are errors that
    /// name the key and its line.
    public static func load(path: String) throws -> SagaConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(message: "cannot read configuration file \(path): it does not exist or is not readable")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    public static func parse(_ yaml: String, source: String = "configuration") throws -> SagaConfiguration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigurationError(message: "\(source): not valid YAML: \(error)")
        }
        var configuration = SagaConfiguration()
        guard let root else { return configuration }
        let reader = YAMLReader(source: source)
        let top = try reader.mapping(root, "the top level")
        try reader.onlyKeys(top, ["topics", "vip", "steps", "compensation", "watchdog", "workers", "inventory", "faults", "alerts"], at: "the top level")
        if let topics = top["topics"] {
            let m = try reader.mapping(topics, "topics")
            try reader.onlyKeys(m, ["prefix", "partitions"], at: "topics")
            if let v = m["prefix"] { configuration.topicPrefix = try reader.string(v, "topics.prefix") }
            if let v = m["partitions"] { configuration.partitions = try reader.int(v, "topics.partitions", min: 1, max: 1000) }
        }
        if let vip = top["vip"] {
            let m = try reader.mapping(vip, "vip")
            try reader.onlyKeys(m, ["amount_threshold", "starvation_guard"], at: "vip")
            if let v = m["amount_threshold"] { configuration.vipAmountThreshold = try reader.double(v, "vip.amount_threshold", min: 0, max: maxVIPAmountThreshold) }
            if let v = m["starvation_guard"] { configuration.starvationGuard = try reader.int(v, "vip.starvation_guard", min: 1, max: 1000) }
        }
        if let steps = top["steps"] {
            let m = try reader.mapping(steps, "steps")
            try reader.onlyKeys(m, SagaStep.allCases.map(\.rawValue), at: "steps")
            for step in SagaStep.allCases {
                if let v = m[step.rawValue] {
                    configuration.steps[step] = try reader.policy(v, "steps.\(step.rawValue)", base: configuration[step], isStep: true)
                }
            }
        }
        if let v = top["compensation"] {
            configuration.compensation = try reader.policy(v, "compensation", base: configuration.compensation, isStep: false)
        }
        if let watchdog = top["watchdog"] {
            let m = try reader.mapping(watchdog, "watchdog")
            try reader.onlyKeys(m, ["interval_seconds", "grace_seconds"], at: "watchdog")
            if let v = m["interval_seconds"] { configuration.watchdogIntervalSeconds = try reader.double(v, "watchdog.interval_seconds", min: 0.01) }
            if let v = m["grace_seconds"] { configuration.watchdogGraceSeconds = try reader.double(v, "watchdog.grace_seconds", min: 0) }
        }
        if let workers = top["workers"] {
            let m = try reader.mapping(workers, "workers")
            try reader.onlyKeys(m, ["concurrency", "batch_size"], at: "workers")
            if let v = m["concurrency"] { configuration.concurrency = try reader.int(v, "workers.concurrency", min: 1, max: 10_000) }
            if let v = m["batch_size"] { configuration.batchSize = try reader.int(v, "workers.batch_size", min: 1, max: 100_000) }
        }
        if let inventory = top["inventory"] {
            let m = try reader.mapping(inventory, "inventory")
            try reader.onlyKeys(m, ["sku_count", "initial_stock"], at: "inventory")
            if let v = m["sku_count"] { configuration.skuCount = try reader.int(v, "inventory.sku_count", min: 1, max: 1_000_000) }
            if let v = m["initial_stock"] { configuration.initialStock = try reader.int(v, "inventory.initial_stock", min: 0, max: Int(Int32.max)) }
        }
        if let alerts = top["alerts"] {
            configuration.alerts = try reader.alertPolicy(alerts)
        }
        if let faults = top["faults"] {
            let m = try reader.mapping(faults, "faults")
            for (keyNode, value) in m {
                let name = try reader.string(keyNode, "faults")
                configuration.faultProfiles[name] = try reader.faultProfile(value, name: name)
            }
        }
        return configuration
    }
}

/// Walks composed YAML nodes with errors that say where.
private struct YAMLReader {
    let source: String

    func location(_ node: Node) -> String {
        node.mark.map { "\(source):\($0.line)" } ?? source
    }

    func fail(_ node: Node, _ what: String) -> ConfigurationError {
        ConfigurationError(message: "\(location(node)): \(what)")
    }

    func mapping(_ node: Node, _ key: String) throws -> Node.Mapping {
        guard case .mapping(let m) = node else { throw fail(node, "\(key) must be a mapping of keys to values") }
        return m
    }

    func onlyKeys(_ mapping: Node.Mapping, _ allowed: [String], at key: String) throws {
        for (k, _) in mapping {
            let name = k.string ?? "?"
            if !allowed.contains(name) {
                throw fail(k, "unknown key '\(name)' in \(key); expected one of: \(allowed.joined(separator: ", "))")
            }
        }
    }

    func string(_ node: Node, _ key: String) throws -> String {
        guard case .scalar(let s) = node else { throw fail(node, "\(key) must be a string") }
        return s.string
    }

    func int(_ node: Node, _ key: String, min: Int? = nil, max: Int? = nil) throws -> Int {
        guard case .scalar = node, let v = node.int else { throw fail(node, "\(key) must be a whole number, not '\(node.string ?? "a collection")'") }
        if let min, v < min { throw fail(node, "\(key) must be at least \(min), not \(v)") }
        if let max, v > max { throw fail(node, "\(key) must be at most \(max), not \(v)") }
        return v
    }

    func double(_ node: Node, _ key: String, min: Double? = nil, max: Double? = nil) throws -> Double {
        guard case .scalar = node, let v = node.float ?? node.int.map(Double.init), v.isFinite else {
            throw fail(node, "\(key) must be a number (fractions allowed), not '\(node.string ?? "a collection")'")
        }
        if let min, v < min { throw fail(node, "\(key) must be at least \(min), not \(v)") }
        if let max, v > max { throw fail(node, "\(key) must be at most \(max), not \(v)") }
        return v
    }

    func strings(_ node: Node, _ key: String) throws -> [String] {
        guard case .sequence(let s) = node else { throw fail(node, "\(key) must be a list such as [TransientError, Timeout]") }
        return try s.map { try string($0, key) }
    }

    func isNull(_ node: Node) -> Bool {
        if case .scalar(let s) = node { return s.string == "~" || s.string == "null" || (s.string.isEmpty && s.style == .plain) }
        return false
    }

    /// `alerts:`: windows in seconds, thresholds as numbers, or `off` to leave an alert out.
    func alertPolicy(_ node: Node) throws -> AlertPolicy {
        let m = try mapping(node, "alerts")
        var policy = AlertPolicy()
        let thresholds: [(String, WritableKeyPath<AlertPolicy, Double?>, Double, Double?)] = [
            ("success_rate_below", \.successRateBelow, 0, 1),
            ("reserve_failure_rate_above", \.reserveFailureRateAbove, 0, 1),
            ("retry_rate_above", \.retryRateAbove, 0, 1),
            ("step_timeouts_above", \.stepTimeoutsAbove, 0, nil),
            ("manual_review_above", \.manualReviewAbove, 0, nil),
            ("vip_p99_seconds_above", \.vipP99SecondsAbove, 0, nil),
            ("standard_p99_seconds_above", \.standardP99SecondsAbove, 0, nil),
            ("stuck_orders_per_hour_above", \.stuckOrdersPerHourAbove, 0, nil),
            ("consumer_lag_above", \.consumerLagAbove, 0, nil),
        ]
        try onlyKeys(m, ["window_seconds", "for_seconds", "evaluation_interval_seconds", "dead_letters_pending_growing"] + thresholds.map(\.0), at: "alerts")
        if let v = m["window_seconds"] { policy.windowSeconds = try double(v, "alerts.window_seconds", min: 1, max: 86_400) }
        if let v = m["for_seconds"] { policy.forSeconds = try double(v, "alerts.for_seconds", min: 0, max: 86_400) }
        if let v = m["evaluation_interval_seconds"] { policy.evaluationIntervalSeconds = try double(v, "alerts.evaluation_interval_seconds", min: 0.1, max: 3600) }
        if let v = m["dead_letters_pending_growing"] {
            guard let flag = v.bool else { throw fail(v, "alerts.dead_letters_pending_growing must be true or false") }
            policy.deadLettersPendingGrowing = flag
        }
        for (key, path, low, high) in thresholds {
            guard let v = m[key] else { continue }
            policy[keyPath: path] = v.string == "off" ? nil : try double(v, "alerts.\(key) (a number, or off)", min: low, max: high)
        }
        return policy
    }

    /// `isStep`: a step's policy also takes `compensate_on` and `undo` (the compensation's does not).
    func policy(_ node: Node, _ key: String, base: StepPolicy, isStep: Bool) throws -> StepPolicy {
        let m = try mapping(node, key)
        try onlyKeys(m, ["retry", "timeout_seconds", "heartbeat_seconds", "non_retryable", "on_exhausted"] + (isStep ? ["compensate_on", "undo"] : []), at: key)
        var policy = base
        if let v = m["compensate_on"] {
            policy.compensateOn = try strings(v, "\(key).compensate_on")
            if let empty = policy.compensateOn.firstIndex(of: "") { throw fail(v, "\(key).compensate_on[\(empty)] is empty; name an error class such as OutOfStock, or States.ALL") }
        }
        if let v = m["undo"] {
            guard case .sequence(let items) = v else { throw fail(v, "\(key).undo must be a list of steps such as [inventory, payment]") }
            var undo: [SagaStep] = []
            for item in items {
                let name = try string(item, "\(key).undo")
                guard let step = SagaStep(rawValue: name) else {
                    throw fail(item, "\(key).undo: unknown step '\(name)'; expected payment, inventory or shipping")
                }
                guard step != .notification else { throw fail(item, "\(key).undo cannot hold notification: a sent notification cannot be unsent") }
                guard !undo.contains(step) else { throw fail(item, "\(key).undo names \(name) twice") }
                undo.append(step)
            }
            policy.undo = undo
        }
        if let v = m["timeout_seconds"] { policy.timeoutSeconds = try double(v, "\(key).timeout_seconds", min: 0.001) }
        if let v = m["heartbeat_seconds"] { policy.heartbeatSeconds = isNull(v) ? nil : try double(v, "\(key).heartbeat_seconds", min: 0.001) }
        if let v = m["non_retryable"] { policy.nonRetryable = try strings(v, "\(key).non_retryable") }
        if let v = m["on_exhausted"] {
            let text = try string(v, "\(key).on_exhausted")
            guard let action = ExhaustedAction(rawValue: text) else { throw fail(v, "\(key).on_exhausted must be 'compensate' or 'park', not '\(text)'") }
            policy.onExhausted = action
        }
        if let v = m["retry"] {
            guard case .sequence(let rules) = v else { throw fail(v, "\(key).retry must be a list of retriers") }
            policy.retry = try rules.enumerated().map { i, ruleNode in try rule(ruleNode, "\(key).retry[\(i)]") }
        }
        return policy
    }

    func rule(_ node: Node, _ key: String) throws -> RetryRule {
        let m = try mapping(node, key)
        try onlyKeys(m, ["error_equals", "interval_seconds", "max_attempts", "backoff_rate", "max_delay_seconds", "jitter"], at: key)
        guard let errors = m["error_equals"] else { throw fail(node, "\(key) needs error_equals (a list of error classes, or [States.ALL])") }
        var rule = RetryRule(errorEquals: try strings(errors, "\(key).error_equals"), intervalSeconds: 1, maxAttempts: 3, backoffRate: 2)
        if let v = m["interval_seconds"] { rule.intervalSeconds = try double(v, "\(key).interval_seconds", min: 0) }
        if let v = m["max_attempts"] { rule.maxAttempts = try int(v, "\(key).max_attempts", min: 0, max: 50) }
        if let v = m["backoff_rate"] { rule.backoffRate = try double(v, "\(key).backoff_rate", min: 1) }
        if let v = m["max_delay_seconds"] { rule.maxDelaySeconds = isNull(v) ? nil : try double(v, "\(key).max_delay_seconds", min: 0) }
        if let v = m["jitter"] {
            let text = try string(v, "\(key).jitter")
            guard let jitter = RetryRule.Jitter(rawValue: text) else { throw fail(v, "\(key).jitter must be 'full' or 'none', not '\(text)'") }
            rule.jitter = jitter
        }
        return rule
    }

    func faultProfile(_ node: Node, name: String) throws -> FaultProfile {
        var profile = FaultProfile(name: name)
        if isNull(node) { return profile }
        let m = try mapping(node, "faults.\(name)")
        try onlyKeys(m, SagaStep.allCases.map(\.rawValue), at: "faults.\(name)")
        for step in SagaStep.allCases {
            guard let v = m[step.rawValue] else { continue }
            let key = "faults.\(name).\(step.rawValue)"
            let s = try mapping(v, key)
            try onlyKeys(s, ["transient", "hang", "permanent", "undo_failure", "latency_ms"], at: key)
            var faults = StepFaults()
            if let x = s["transient"] { faults.transient = try double(x, "\(key).transient", min: 0, max: 1) }
            if let x = s["hang"] { faults.hang = try double(x, "\(key).hang", min: 0, max: 1) }
            if let x = s["permanent"] { faults.permanent = try double(x, "\(key).permanent", min: 0, max: 1) }
            if let x = s["undo_failure"] { faults.undoFailure = try double(x, "\(key).undo_failure", min: 0, max: 1) }
            if let x = s["latency_ms"] {
                let l = try mapping(x, "\(key).latency_ms")
                try onlyKeys(l, ["p50", "p99"], at: "\(key).latency_ms")
                if let p = l["p50"] { faults.latencyMilliseconds.p50 = try double(p, "\(key).latency_ms.p50", min: 0) }
                if let p = l["p99"] { faults.latencyMilliseconds.p99 = try double(p, "\(key).latency_ms.p99", min: 0) }
            }
            profile.steps[step] = faults
        }
        return profile
    }
}
