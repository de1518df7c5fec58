/// SASL on the Kafka listener, as the wire protocol sees it: mechanisms are offered by an
/// authenticator (the `WireSecurity` module: PLAIN and SCRAM over a users file), each
/// connection keeps its own `ConnectionSession`, and a principal's `TopicGrants` decide
/// what it may produce to, read, and administer.

/// What one user may touch. A pattern is a topic name, `*` (every topic) or a prefix
/// ending in `*` (`orders*`).
public struct TopicGrants: Sendable, Equatable, Codable {
    public var produce: [String]
    public var consume: [String]
    /// Create and delete topics.
    public var admin: Bool

    public init(produce: [String], consume: [String], admin: Bool) {
        self.produce = produce
        self.consume = consume
        self.admin = admin
    }

    public func mayProduce(_ topic: String) -> Bool { Self.matches(produce, topic) }
    public func mayConsume(_ topic: String) -> Bool { Self.matches(consume, topic) }

    static func matches(_ patterns: [String], _ topic: String) -> Bool {
        patterns.contains { pattern in
            pattern == "*" || pattern == topic || (pattern.hasSuffix("*") && topic.hasPrefix(pattern.dropLast()))
        }
    }
}

/// Who a connection's client proved to be.
public struct WirePrincipal: Sendable, Equatable {
    public let name: String
    public let grants: TopicGrants

    public init(name: String, grants: TopicGrants) {
        self.name = name
        self.grants = grants
    }
}

/// One step of a SASL exchange, from the server's side.
public enum SaslStep: Sendable {
    /// Send these bytes; the client answers with its next token.
    case challenge([UInt8])
    /// The client proved who it is; send these final bytes (empty for PLAIN).
    case authenticated(WirePrincipal, final: [UInt8])
    /// Refused; the reason is logged, the client is told only that authentication failed.
    case failed(String)
}

/// One client's run through a mechanism.
public protocol SaslExchange: Sendable {
    mutating func step(_ token: [UInt8]) -> SaslStep
}

/// The mechanisms a listener offers and how each checks a client.
public protocol SaslAuthenticator: Sendable {
    /// In the order offered ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512").
    var mechanisms: [String] { get }
    /// A fresh exchange for `mechanism`, or nil when it is not offered.
    func begin(_ mechanism: String) -> (any SaslExchange)?
}

/// One connection's authentication. Touched only by that connection's reader, one request
/// at a time, hence unchecked.
public final class ConnectionSession: @unchecked Sendable {
    enum State {
        /// No SASL on this listener: every request is served.
        case open
        /// SASL is required and nothing happened yet.
        case awaitingHandshake
        case exchanging(any SaslExchange)
        case authenticated(WirePrincipal)
        /// Authentication failed: the connection is closed at its next request.
        case failed
    }

    var state: State
    /// Why authentication just failed, until the listener takes it to count and log.
    var failure: String?

    /// The failure the last request ended in, once.
    func takeFailure() -> String? {
        defer { failure = nil }
        return failure
    }

    public init(requiresAuthentication: Bool) {
        state = requiresAuthentication ? .awaitingHandshake : .open
    }

    /// Whether requests other than ApiVersions and SASL's may be served.
    var mayServe: Bool {
        switch state {
        case .open, .authenticated: true
        default: false
        }
    }

    /// The grants of the authenticated principal; nil on a listener without SASL (all allowed).
    var grants: TopicGrants? {
        if case .authenticated(let principal) = state { return principal.grants }
        return nil
    }

    public var principal: WirePrincipal? {
        if case .authenticated(let principal) = state { return principal }
        return nil
    }
}
