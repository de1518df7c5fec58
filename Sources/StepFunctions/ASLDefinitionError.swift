/// A definition that is not valid ASL: every problem found, all at once, each with its path.
/// The CLI prints `description` and exits 2.
public struct ASLDefinitionError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var problems: [ASLProblem]

    public var description: String {
        "\(source) is not a valid Step Functions definition (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n"
            + problems.map { "  " + $0.description }.joined(separator: "\n")
    }
}
