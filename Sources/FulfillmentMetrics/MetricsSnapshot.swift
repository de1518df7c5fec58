/// The values of the process's metrics at one moment, read back from its own Prometheus
/// exposition: what the in-process alert evaluator, the status lines and the console's live
/// figures work from, so they see exactly what a Prometheus server scraping `/metrics` sees.
public struct MetricsSnapshot: Sendable {
    public struct Series: Hashable, Sendable {
        public var name: String
        public var labels: [String: String]

        public init(_ name: String, _ labels: [String: String] = [:]) {
            self.name = name
            self.labels = labels
        }
    }

    public var values: [Series: Double]
    /// When it was taken (Unix seconds).
    public var at: Double

    public init(values: [Series: Double] = [:], at: Double = 0) {
        self.values = values
        self.at = at
    }

    /// Reads Prometheus' text format (0.0.4): `name{label="value",...} number` lines;
    /// comments and lines it cannot read are skipped.
    public static func parse(_ text: String, at: Double = 0) -> MetricsSnapshot {
        var values: [Series: Double] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix("#") {
            if let (series, value) = parseLine(Substring(line)) { values[series] = value }
        }
        return MetricsSnapshot(values: values, at: at)
    }

    static func parseLine(_ line: Substring) -> (Series, Double)? {
        var labels: [String: String] = [:]
        let name: Substring
        var rest: Substring
        if let brace = line.firstIndex(of: "{") {
            name = line[..<brace]
            rest = line[line.index(after: brace)...]
            // label="value" pairs; values escape \\, \" and \n.
            while true {
                rest = rest.drop { $0 == "," || $0 == " " }
                if rest.first == "}" {
                    rest = rest.dropFirst()
                    break
                }
                guard let equals = rest.firstIndex(of: "=") else { return nil }
                let key = String(rest[..<equals])
                rest = rest[rest.index(after: equals)...]
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                var value = ""
                var escaped = false
                var closed = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(c == "n" ? "\n" : c)
                        escaped = false
                    } else if c == "\\" {
                        escaped = true
                    } else if c == "\"" {
                        closed = true
                        break
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { return nil }
                labels[key] = value
            }
        } else {
            guard let space = line.firstIndex(of: " ") else { return nil }
            name = line[..<space]
            rest = line[space...]
        }
        let fields = rest.split(separator: " ")
        guard let first = fields.first, let value = Self.number(first) else { return nil }
        return (Series(String(name), labels), value)
    }

    static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf": .infinity
        case "-Inf": -.infinity
        case "NaN": .nan
        default: Double(text)
        }
    }

    /// The sum over every series of `name` whose labels include `matching`.
    public func sum(_ name: String, _ matching: [String: String] = [:]) -> Double {
        values.reduce(0) { total, entry in
            entry.key.name == name && matching.allSatisfy({ entry.key.labels[$0.key] == $0.value }) ? total + entry.value : total
        }
    }

    /// Sums of `name` per value of `label` (over series matching `matching`).
    public func sums(_ name: String, by label: String, _ matching: [String: String] = [:]) -> [String: Double] {
        var result: [String: Double] = [:]
        for (series, value) in values where series.name == name && matching.allSatisfy({ series.labels[$0.key] == $0.value }) {
            result[series.labels[label] ?? "", default: 0] += value
        }
        return result
    }

    /// The cumulative buckets of histogram `name` (its `_bucket` series summed over the series
    /// matching `matching`), by upper bound, `+Inf` last.
    public func buckets(_ name: String, _ matching: [String: String] = [:]) -> [(upperBound: Double, count: Double)] {
        var byBound: [Double: Double] = [:]
        for (series, value) in values where series.name == name + "_bucket" && matching.allSatisfy({ series.labels[$0.key] == $0.value }) {
            guard let le = series.labels["le"].flatMap({ Self.number(Substring($0)) }) else { continue }
            byBound[le, default: 0] += value
        }
        return byBound.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Prometheus' `histogram_quantile`: the bucket holding the q-th observation, linearly
    /// interpolated within it; `nil` without observations.
    public static func quantile(_ q: Double, _ buckets: [(upperBound: Double, count: Double)]) -> Double? {
        guard let total = buckets.last?.count, total > 0, buckets.last?.upperBound == .infinity else { return nil }
        let rank = q * total
        var previousBound = 0.0
        var previousCount = 0.0
        for (bound, count) in buckets {
            if count >= rank {
                if bound == .infinity { return previousBound }
                if count == previousCount { return bound }
                return previousBound + (bound - previousBound) * (rank - previousCount) / (count - previousCount)
            }
            previousBound = bound
            previousCount = count
        }
        return previousBound
    }

    /// The bucket (lower, upper bound) that `histogram_quantile` picks for q: a value
    /// computed exactly from the observations lies in it.
    public static func quantileBucket(_ q: Double, _ buckets: [(upperBound: Double, count: Double)]) -> ClosedRange<Double>? {
        guard let total = buckets.last?.count, total > 0 else { return nil }
        let rank = q * total
        var previousBound = 0.0
        for (bound, count) in buckets {
            if count >= rank { return previousBound...bound }
            previousBound = bound
        }
        return nil
    }

    /// Per series of `name` (matching `matching`): how much each counter grew since
    /// `earlier` (a counter that went down was reset: its whole value counts).
    public func increase(_ name: String, since earlier: MetricsSnapshot, _ matching: [String: String] = [:]) -> Double {
        var total = 0.0
        for (series, value) in values where series.name == name && matching.allSatisfy({ series.labels[$0.key] == $0.value }) {
            let before = earlier.values[series] ?? 0
            total += value >= before ? value - before : value
        }
        return total
    }
}
