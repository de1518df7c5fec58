extension SagaConfiguration {
    /// This configuration as a YAML file that `parse` reads back to an equal configuration.
    /// Only what differs from the defaults is written, a step or the compensation policy
    /// whole (every key, since `parse` starts a step from its seed policy); `header` lines
    /// become comments at the top (where the file came from, what was not carried).
    public func yaml(header: [String] = []) -> String {
        let defaults = SagaConfiguration()
        var out = header.flatMap { $0.split(separator: "\n", omittingEmptySubsequences: false) }.map { "# " + $0 }
        if !out.isEmpty { out.append("") }
        if topicPrefix != defaults.topicPrefix || partitions != defaults.partitions {
            out.append("topics:")
            if topicPrefix != defaults.topicPrefix { out.append("  prefix: \(Self.yamlString(topicPrefix))") }
            if partitions != defaults.partitions { out.append("  partitions: \(partitions)") }
        }
        if vipAmountThreshold != defaults.vipAmountThreshold || starvationGuard != defaults.starvationGuard {
            out.append("vip:")
            if vipAmountThreshold != defaults.vipAmountThreshold { out.append("  amount_threshold: \(Self.yamlNumber(vipAmountThreshold))") }
            if starvationGuard != defaults.starvationGuard { out.append("  starvation_guard: \(starvationGuard)") }
        }
        let changedSteps = SagaStep.allCases.filter { self[$0] != defaults[$0] }
        if !changedSteps.isEmpty {
            out.append("steps:")
            for step in changedSteps {
                out.append("  \(step.rawValue):")
                out += Self.yamlLines(self[step], base: defaults[step], indent: "    ")
            }
        }
        if compensation != defaults.compensation {
            out.append("compensation:")
            out += Self.yamlLines(compensation, base: defaults.compensation, indent: "  ")
        }
        if watchdogIntervalSeconds != defaults.watchdogIntervalSeconds || watchdogGraceSeconds != defaults.watchdogGraceSeconds {
            out.append("watchdog:")
            out.append("  interval_seconds: \(Self.yamlNumber(watchdogIntervalSeconds))")
            out.append("  grace_seconds: \(Self.yamlNumber(watchdogGraceSeconds))")
        }
        if concurrency != defaults.concurrency || batchSize != defaults.batchSize {
            out.append("workers:")
            out.append("  concurrency: \(concurrency)")
            out.append("  batch_size: \(batchSize)")
        }
        if skuCount != defaults.skuCount || initialStock != defaults.initialStock {
            out.append("inventory:")
            out.append("  sku_count: \(skuCount)")
            out.append("  initial_stock: \(initialStock)")
        }
        let changedProfiles = faultProfiles.keys.sorted().filter { faultProfiles[$0] != defaults.faultProfiles[$0] }
        if !changedProfiles.isEmpty {
            out.append("faults:")
            for name in changedProfiles {
                let profile = faultProfiles[name]!
                let steps = SagaStep.allCases.compactMap { step in profile.steps[step].map { (step, $0) } }
                out.append("  \(Self.yamlString(name)):" + (steps.isEmpty ? " {}" : ""))
                for (step, faults) in steps {
                    var fields: [String] = []
                    if faults.transient != 0 { fields.append("transient: \(Self.yamlNumber(faults.transient))") }
                    if faults.hang != 0 { fields.append("hang: \(Self.yamlNumber(faults.hang))") }
                    if faults.permanent != 0 { fields.append("permanent: \(Self.yamlNumber(faults.permanent))") }
                    if faults.undoFailure != 0 { fields.append("undo_failure: \(Self.yamlNumber(faults.undoFailure))") }
                    if faults.latencyMilliseconds != LatencyDistribution() {
                        fields.append("latency_ms: {p50: \(Self.yamlNumber(faults.latencyMilliseconds.p50)), p99: \(Self.yamlNumber(faults.latencyMilliseconds.p99))}")
                    }
                    out.append("    \(step.rawValue): {\(fields.joined(separator: ", "))}")
                }
            }
        }
        if out.allSatisfy({ $0.isEmpty || $0.hasPrefix("#") }) { out.append("{}") }
        return out.joined(separator: "\n") + "\n"
    }

    /// Every key of a policy, so the file does not depend on the seed policy it is read onto.
    static func yamlLines(_ policy: StepPolicy, base: StepPolicy, indent: String) -> [String] {
        var lines = ["\(indent)timeout_seconds: \(yamlNumber(policy.timeoutSeconds))"]
        if let heartbeat = policy.heartbeatSeconds {
            lines.append("\(indent)heartbeat_seconds: \(yamlNumber(heartbeat))")
        } else if base.heartbeatSeconds != nil {
            lines.append("\(indent)heartbeat_seconds: null")
        }
        if policy.retry.isEmpty {
            lines.append("\(indent)retry: []")
        } else {
            lines.append("\(indent)retry:")
            for rule in policy.retry {
                lines.append("\(indent)  - error_equals: \(yamlList(rule.errorEquals))")
                lines.append("\(indent)    interval_seconds: \(yamlNumber(rule.intervalSeconds))")
                lines.append("\(indent)    max_attempts: \(rule.maxAttempts)")
                lines.append("\(indent)    backoff_rate: \(yamlNumber(rule.backoffRate))")
                if let cap = rule.maxDelaySeconds { lines.append("\(indent)    max_delay_seconds: \(yamlNumber(cap))") }
                lines.append("\(indent)    jitter: \(rule.jitter.rawValue)")
            }
        }
        lines.append("\(indent)non_retryable: \(yamlList(policy.nonRetryable))")
        lines.append("\(indent)on_exhausted: \(policy.onExhausted.rawValue)")
        if policy.compensateOn != base.compensateOn { lines.append("\(indent)compensate_on: \(yamlList(policy.compensateOn))") }
        if let undo = policy.undo { lines.append("\(indent)undo: \(yamlList(undo.map(\.rawValue)))") }
        return lines
    }

    static func yamlList(_ items: [String]) -> String { "[" + items.map(yamlString).joined(separator: ", ") + "]" }

    /// A number as YAML reads it back exactly: whole numbers without a fraction, others in
    /// Swift's shortest round-trip form.
    static func yamlNumber(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }

    /// A plain scalar when it cannot be read as anything but this string, else double-quoted.
    static func yamlString(_ text: String) -> String {
        let plain = text.first.map { $0.isLetter || $0 == "_" } ?? false
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") }
            && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"].contains(text.lowercased())
        if plain { return text }
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            case "\r": quoted += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) || scalar.value == 0xFEFF || (0xD800..<0xE000).contains(scalar.value) {
                    quoted += "\\u" + String(repeating: "0", count: max(0, 4 - String(scalar.value, radix: 16).count)) + String(scalar.value, radix: 16)
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return quoted + "\""
    }
}
