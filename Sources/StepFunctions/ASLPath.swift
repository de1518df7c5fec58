/// A JSON path into a definition, as statelint-style messages show it:
/// `$.States.ReserveInventory.Retry[0].ErrorEquals`, or `$.States['Reservation Successful!']`
/// for a name that is not a plain identifier.
public struct ASLPath: Hashable, Sendable, CustomStringConvertible, Codable {
    public private(set) var description: String

    public static let root = ASLPath(description: "$")

    init(description: String) { self.description = description }

    public init(from decoder: any Decoder) throws { description = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public func key(_ name: String) -> ASLPath {
        let plain = name.first.map { $0.isASCII && ($0.isLetter || $0 == "_") } ?? false
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
        if plain { return ASLPath(description: description + "." + name) }
        let escaped = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        return ASLPath(description: description + "['" + escaped + "']")
    }

    public func index(_ i: Int) -> ASLPath { ASLPath(description: description + "[\(i)]") }

    public static func / (path: ASLPath, name: String) -> ASLPath { path.key(name) }
}
