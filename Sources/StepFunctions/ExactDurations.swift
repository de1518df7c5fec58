import Foundation

/// ASL takes whole seconds (`TimeoutSeconds`, `IntervalSeconds`, ...); our durations take
/// fractions (the fast profile retries after 0.1 s). Export writes the whole seconds ASL needs
/// (rounded up, at least 1) and keeps the exact value in the state's or retrier's `Comment`
/// as `fulfillment exact: IntervalSeconds=0.1`; import reads it back when it agrees with the
/// field beside it, so `import(export(c)) == c` holds for fractions too.
enum ExactDurations {
    static let marker = "fulfillment exact:"

    /// The whole seconds ASL accepts for `seconds`.
    static func whole(_ seconds: Double, minimum: Double = 1) -> Double {
        min(99_999_999, max(minimum, seconds.rounded(.up)))
    }

    /// The comment that keeps every value `whole` would change; `nil` when none changes.
    static func comment(_ values: [(field: String, seconds: Double?)], minimum: Double = 1) -> String? {
        let exact = values.compactMap { field, seconds in
            seconds.flatMap { whole($0, minimum: minimum) == $0 ? nil : "\(field)=\($0)" }
        }
        return exact.isEmpty ? nil : marker + " " + exact.joined(separator: " ")
    }

    /// The exact values a comment keeps, by field.
    static func read(_ comment: String?) -> [String: Double] {
        guard let comment, let range = comment.range(of: marker) else { return [:] }
        var values: [String: Double] = [:]
        for token in comment[range.upperBound...].split(separator: " ") {
            let parts = token.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let value = Double(parts[1]), value.isFinite, value >= 0 { values[String(parts[0])] = value }
        }
        return values
    }

    /// The field's value, or the exact one from the comment when it rounds to the field.
    static func value(_ field: String, _ whole: Double?, comment: String?, minimum: Double = 1) -> Double? {
        guard let whole else { return nil }
        if let exact = read(comment)[field], Self.whole(exact, minimum: minimum) == whole { return exact }
        return whole
    }
}
