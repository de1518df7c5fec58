/// Numbers as people read them in notes and findings: `2`, `0.5`, `∞`.
enum NumberText {
    static func of(_ value: Double) -> String {
        if value.isInfinite { return "∞" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
