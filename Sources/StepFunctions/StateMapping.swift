import Foundation
import SagaDomain

/// Which state stands for what, given by the user (`--map`), ahead of the name heuristics.
///
/// Syntax: `State=role` entries separated by commas, where role is `payment`, `inventory`,
/// `shipping`, `notification`, `undo:payment` (`undo:inventory`, `undo:shipping`),
/// `manual-review` or `skip`. The state name is everything before the last `=`; a comma in
/// a name is written `\,`. Example: `ValidatePayment=payment,RefundAndFail=undo:payment,
/// Set Order\, Payment and Shipping Status=skip`. The flag may be given more than once.
public struct StateMapping: Hashable, Sendable {
    public var roles: [String: StateRole]

    public init(_ roles: [String: StateRole] = [:]) { self.roles = roles }

    /// Reads `--map` values; an entry it cannot read is an error saying which and why.
    public init(parsing values: [String]) throws(StateMappingError) {
        var roles: [String: StateRole] = [:]
        for value in values {
            var entries: [String] = []
            var current = ""
            var escaped = false
            for c in value {
                if escaped { current.append(c); escaped = false }
                else if c == "\\" { escaped = true }
                else if c == "," { entries.append(current); current = "" }
                else { current.append(c) }
            }
            entries.append(current)
            for entry in entries where !entry.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let equals = entry.lastIndex(of: "=") else {
                    throw StateMappingError(message: "--map entry '\(entry)' needs the form State=role (role: payment, inventory, shipping, notification, undo:payment, undo:inventory, undo:shipping, manual-review, skip)")
                }
                let name = entry[..<equals].trimmingCharacters(in: .whitespaces)
                let roleText = String(entry[entry.index(after: equals)...])
                guard !name.isEmpty else { throw StateMappingError(message: "--map entry '\(entry)' names no state") }
                guard let role = StateRole(roleText) else {
                    throw StateMappingError(message: "--map entry '\(entry)': unknown role '\(roleText)' (expected payment, inventory, shipping, notification, undo:payment, undo:inventory, undo:shipping, manual-review or skip)")
                }
                if let earlier = roles[name], earlier != role {
                    throw StateMappingError(message: "--map gives state '\(name)' two roles: \(earlier) and \(role)")
                }
                roles[name] = role
            }
        }
        self.roles = roles
    }

    public subscript(state: String) -> StateRole? { roles[state] }
}

/// A `--map` value that cannot be read.
public struct StateMappingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
