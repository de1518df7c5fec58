/// What one Kafka protocol listener admits. Every limit has a flag on `broker` and
/// `run --listen`; the defaults let a saga of many processes in, and keep one misbehaving
/// client from taking the listener down.
public struct ListenerLimits: Sendable, Equatable {
    /// Open connections, all clients together.
    public var maxConnections = 1_024
    /// Open connections from one client address: a flood from one host leaves room for the rest.
    public var maxConnectionsPerAddress = 256
    /// Largest request frame. A produce batch travels inside one, so this also caps a batch.
    public var maxFrameBytes = 16 << 20
    /// How long one request frame may take to arrive once its first byte has: a client that
    /// sends a byte a second (slowloris) is cut off here instead of holding a connection forever.
    public var frameDeadline: Duration = .seconds(30)
    /// A connection that neither sends nor receives anything this long is closed (Kafka's
    /// `connections.max.idle.ms` is 9 minutes too); clients reconnect when they need to.
    public var idleTimeout: Duration = .seconds(540)
    /// Requests read from one connection whose answers are not yet sent: past it the listener
    /// stops reading that connection until an answer goes out (librdkafka keeps at most 5).
    public var maxInFlightRequests = 32

    public init() {}

    /// Why a value cannot be a limit, or nil when all are usable.
    public func problem() -> String? {
        if maxConnections < 1 { return "max connections must be at least 1" }
        if maxConnectionsPerAddress < 1 { return "max connections per address must be at least 1" }
        if maxFrameBytes < 1 << 10 { return "max request bytes must be at least 1024" }
        if maxFrameBytes > Int(Int32.max) { return "max request bytes must fit a Kafka frame (at most \(Int32.max))" }
        if frameDeadline <= .zero { return "the request deadline must be positive" }
        if idleTimeout <= .zero { return "the idle timeout must be positive" }
        if maxInFlightRequests < 1 { return "max in-flight requests must be at least 1" }
        return nil
    }
}

/// Which connections a listener lets in: counts open connections in total and per client
/// address against `ListenerLimits`, and says which refusals are worth a log line (the first
/// of each kind per address, so a flood of thousands writes one line, not thousands).
/// A plain value: the listener keeps it under a lock; tests drive it without sockets.
struct ConnectionAdmission {
    enum Decision: Equatable {
        case admitted
        /// `firstForAddress`: the first refusal of this kind for this address since the
        /// refusal memory was last cleared; log it.
        case refused(RefusalReason, firstForAddress: Bool)
    }

    let limits: ListenerLimits
    private(set) var open = 0
    private(set) var openByAddress: [String: Int] = [:]
    private var refusals = RefusalMemory()

    init(limits: ListenerLimits) {
        self.limits = limits
    }

    mutating func admit(_ address: String) -> Decision {
        let fromAddress = openByAddress[address, default: 0]
        let reason: RefusalReason
        if open >= limits.maxConnections {
            reason = .tooManyConnections
        } else if fromAddress >= limits.maxConnectionsPerAddress {
            reason = .tooManyConnectionsFromAddress
        } else {
            open += 1
            openByAddress[address] = fromAddress + 1
            return .admitted
        }
        return .refused(reason, firstForAddress: refusals.isFirst(reason, from: address))
    }

    /// An admitted connection closed.
    mutating func release(_ address: String) {
        guard let count = openByAddress[address], open > 0 else { return }
        open -= 1
        openByAddress[address] = count > 1 ? count - 1 : nil
    }

    /// Whether a refusal that happens later on a connection (a frame too slow, too large) is
    /// the first of its kind from this address.
    mutating func isFirst(_ reason: RefusalReason, from address: String) -> Bool {
        refusals.isFirst(reason, from: address)
    }
}

/// Why the listener turned a client away; the label of `fulfillment_wire_refused_total`.
public enum RefusalReason: String, Sendable, CaseIterable {
    case tooManyConnections = "max_connections"
    case tooManyConnectionsFromAddress = "max_connections_per_address"
    case frameTooLarge = "frame_too_large"
    case frameDeadline = "frame_deadline"
    case idle = "idle_timeout"
    /// A frame that is not a request this listener reads (truncated, malformed, unsupported).
    case malformedRequest = "malformed_request"
    /// The TLS handshake failed: a plain-text client, an untrusted or missing client certificate.
    case tlsHandshake = "tls_handshake"
    /// SASL authentication failed, or a request came before it.
    case authentication = "sasl_authentication"

    init(closing error: WireError) {
        switch error.code {
        case .tooLarge: self = .frameTooLarge
        case .deadline: self = .frameDeadline
        case .idle: self = .idle
        case .unauthenticated: self = .authentication
        default: self = .malformedRequest
        }
    }
}

/// Remembers which (address, reason) pairs were already logged. Bounded: once it holds
/// `capacity` pairs it forgets them all, so a client is logged again at most once per
/// `capacity` distinct refusals, and memory stays flat under a spoofed-address flood.
struct RefusalMemory {
    private var seen: Set<String> = []
    let capacity: Int

    init(capacity: Int = 4_096) {
        self.capacity = capacity
    }

    mutating func isFirst(_ reason: RefusalReason, from address: String) -> Bool {
        if seen.count >= capacity { seen.removeAll(keepingCapacity: true) }
        return seen.insert(reason.rawValue + " " + address).inserted
    }
}
