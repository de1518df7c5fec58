import Glibc
import Hummingbird
import Logging
import Messaging
import NIOCore
import ServiceLifecycle

/// The operator listener as one more `Service` of the process's `ServiceGroup` (shutdown
/// stays one mechanism): Hummingbird serving the operator routes on `host:port` (port 0:
/// a free one, told to `onListening`).
public struct OperatorHTTPService: Service {
    let surface: OperatorSurface
    let host: String
    let port: Int
    let onListening: @Sendable (Int) -> Void

    public init(surface: OperatorSurface, host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.surface = surface
        self.host = host
        self.port = port
        self.onListening = onListening
    }

    public func run() async throws {
        var logger = surface.logger
        logger[metadataKey: "http.listener"] = "\(host):\(port)"
        let onListening = self.onListening
        let application = Application(
            router: OperatorRouter.make(surface),
            configuration: .init(address: .hostname(host, port: port), serverName: "fulfillment"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        do {
            try await application.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EACCES {
            // NIO says "bind(descriptor:ptr:bytes:): Address already in use": say which
            // address, and what to do.
            let cause = error.errnoCode == EADDRINUSE ? "the address is in use (another fulfillment process?)" : "permission denied (a port below 1024?)"
            throw HTTPAddressError(message: "cannot serve HTTP on \(host):\(port): \(cause); choose another with --http HOST:PORT (port 0 takes a free one) or turn it off with --http off")
        }
    }
}

/// Where `--http` listens: `HOST:PORT`, or `off`.
public enum HTTPAddress: Sendable, Equatable {
    case off
    case listen(host: String, port: Int)

    /// Parses `off`, `HOST:PORT` or `[IPv6]:PORT`; says what it expected otherwise.
    public static func parse(_ text: String) throws -> HTTPAddress {
        if text == "off" { return .off }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw HTTPAddressError(message: "--http must be HOST:PORT (e.g. 127.0.0.1:8080) or off, got '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw HTTPAddressError(message: "--http needs a host before the port, e.g. 127.0.0.1:\(port)") }
        return .listen(host: host, port: port)
    }

    /// Whether only this machine can reach it.
    public var isLoopback: Bool {
        guard case .listen(let host, _) = self else { return true }
        return HostAddress.isLoopback(host)
    }
}

public struct HTTPAddressError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
