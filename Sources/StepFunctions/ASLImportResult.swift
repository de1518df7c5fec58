import SagaDomain

/// What `ASLImport` made of a definition: the configuration, which state became what, the
/// states it could not place, and notes on everything carried loosely or not at all.
public struct ASLImportResult: Sendable {
    /// A state and the role it was given (by `--map` or by its name).
    public struct MappedState: Hashable, Sendable {
        public var name: String
        public var path: ASLPath
        public var role: StateRole
    }

    /// A Task that matched no role: listed, and left out of the configuration.
    public struct UnmappedState: Hashable, Sendable, CustomStringConvertible {
        public var name: String
        public var path: ASLPath
        public var why: String
        public var description: String { "\"\(name)\" at \(path): \(why)" }
    }

    public var source: String
    public var configuration: SagaConfiguration
    public var mapped: [MappedState]
    public var unmapped: [UnmappedState]
    public var notes: [String]

    /// The configuration file, with a header saying where it came from and what was not mapped.
    public var yaml: String {
        var header = ["Imported from \(source) by `fulfillment asl import`."]
        header += mapped.map { "  \($0.name) → \($0.role)" }
        if !unmapped.isEmpty {
            header.append("Not mapped (left out; map them with --map State=role):")
            header += unmapped.map { "  - \($0)" }
        }
        if !notes.isEmpty {
            header.append("Notes:")
            header += notes.map { "  - \($0)" }
        }
        return configuration.yaml(header: header)
    }
}
