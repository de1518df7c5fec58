import Hummingbird
import Logging
import NIOCore

/// The request context of the operator listener: Hummingbird's core storage, plus the
/// client's address (for the audit record of a write).
public struct OperatorRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress.map { address in
            address.ipAddress.map { "\($0):\(address.port ?? 0)" } ?? "\(address)"
        } ?? "unknown"
    }

    /// The largest body any request may send (an NDJSON batch of orders); smaller routes cap
    /// their own bodies lower.
    public var maxUploadSize: Int { OperatorLimits.ordersBody }
}

/// Caps on what a request may send.
public enum OperatorLimits {
    /// `POST /api/orders`: an NDJSON batch.
    public static let ordersBody = 16 << 20
    /// Every other request body.
    public static let smallBody = 64 << 10
    /// Records per page of a dead-letter topic, orders per page of a list.
    public static let pageLimit = 1000
}
