/// One thing wrong with a definition, where it is and why (statelint's shape:
/// `MISSING_TRANSITION_TARGET: Missing 'Next' target: pass3 at $.States.pass1.Next`).
public struct ASLProblem: Hashable, Sendable, Codable, CustomStringConvertible {
    /// A stable name for the kind of problem (statelint's names where it has one).
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let notJSON = Code(rawValue: "NOT_JSON")
        public static let schema = Code(rawValue: "SCHEMA_VALIDATION_FAILED")
        public static let missingTransitionTarget = Code(rawValue: "MISSING_TRANSITION_TARGET")
        public static let unreachableState = Code(rawValue: "UNREACHABLE_STATE")
        public static let duplicateStateName = Code(rawValue: "DUPLICATE_STATE_NAME")
        public static let duplicateKey = Code(rawValue: "DUPLICATE_KEY")
        public static let statesAllNotAlone = Code(rawValue: "STATES_ALL_NOT_ALONE")
        public static let statesAllNotLast = Code(rawValue: "STATES_ALL_NOT_LAST")
        public static let missingNextOrEnd = Code(rawValue: "MISSING_NEXT_OR_END")
        public static let nextAndEnd = Code(rawValue: "NEXT_AND_END")
        public static let jsonataFieldInJSONPath = Code(rawValue: "JSONATA_FIELD_IN_JSONPATH_STATE")
    }

    public var code: Code
    public var path: ASLPath
    public var message: String

    public init(_ code: Code, _ message: String, at path: ASLPath) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { "\(code): \(message) at \(path)" }
}
