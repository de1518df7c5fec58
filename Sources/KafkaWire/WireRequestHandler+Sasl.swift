import Logging

/// SaslHandshake (v1) and SaslAuthenticate (v0-1): the client names a mechanism, then its
/// tokens travel inside SaslAuthenticate requests until the exchange ends.
extension WireRequestHandler {
    func writeSaslHandshake(_ w: inout WireWriter, mechanism: String, version: Int16, session: ConnectionSession, context: Context) {
        let offered = authenticator?.mechanisms ?? []
        var error = ErrorCode.none
        switch session.state {
        case .awaitingHandshake where version == 0:
            // v0 would send the tokens unframed next; only SaslAuthenticate carries them here.
            error = .unsupportedSaslMechanism
        case .awaitingHandshake:
            if let exchange = authenticator?.begin(mechanism) {
                session.state = .exchanging(exchange)
            } else {
                error = .unsupportedSaslMechanism
            }
        case .open:
            // No SASL here: a client configured for it is told no mechanism is offered.
            error = .unsupportedSaslMechanism
        case .exchanging, .authenticated, .failed:
            error = .illegalSaslState
        }
        w.int16(error.rawValue)
        w.array(offered) { w, name in w.string(name) }
    }

    func writeSaslAuthenticate(_ w: inout WireWriter, token: [UInt8], version: Int16, session: ConnectionSession, context: Context) throws {
        func answer(_ error: ErrorCode, _ message: String?, _ bytes: [UInt8]) {
            w.int16(error.rawValue)
            w.string(message)
            w.nullableBytes(bytes)
            if version >= 1 { w.int64(0) }  // session lifetime: no re-authentication asked
        }
        guard case .exchanging(var exchange) = session.state else {
            if case .failed = session.state { throw WireError(.unauthenticated, "SaslAuthenticate after a failed authentication") }
            answer(.illegalSaslState, "SaslAuthenticate without a SaslHandshake first", [])
            return
        }
        switch exchange.step(token) {
        case .challenge(let bytes):
            session.state = .exchanging(exchange)
            answer(.none, nil, bytes)
        case .authenticated(let principal, let final):
            session.state = .authenticated(principal)
            logger.info("client authenticated", metadata: ["net.peer": "\(context.peer)", "kafka.principal": "\(principal.name)"])
            answer(.none, nil, final)
        case .failed(let reason):
            // The client learns only that it failed (no hint whether the user exists); the
            // listener counts it and logs why, once per client. The connection closes at its
            // next request.
            session.state = .failed
            session.failure = reason
            answer(.saslAuthenticationFailed, "Authentication failed: invalid credentials", [])
        }
    }
}
