/// A definition the importer will not turn into a configuration: every reason, all at once,
/// each naming the state and its JSON path. The CLI prints `description` and exits 2.
public struct ASLImportRefusal: Error, Sendable, CustomStringConvertible {
    public struct Reason: Hashable, Sendable, Codable, CustomStringConvertible {
        /// The state refused, or `nil` for the definition as a whole.
        public var state: String?
        public var path: ASLPath
        public var reason: String

        public var description: String { (state.map { "\"\($0)\" " } ?? "") + "at \(path): \(reason)" }
    }

    public var source: String
    public var reasons: [Reason]

    public var description: String {
        "\(source) cannot be imported (\(reasons.count) reason\(reasons.count == 1 ? "" : "s")):\n"
            + reasons.map { "  " + $0.description }.joined(separator: "\n")
    }
}
