import KafkaWire
import NIOCore
import NIOSSL

/// TLS for the Kafka listener (`--tls-cert`, `--tls-key`, `--tls-client-ca`): the server's
/// certificate chain and key, and, for mutual TLS, the CA a client's certificate must chain
/// to. Loaded once at start-up, so a missing file or a key that does not match the
/// certificate stops the command before it listens.
public struct ListenerTLS: ConnectionEncryption {
    let context: NIOSSLContext
    /// Whether clients must present a certificate signed by the client CA.
    public let verifiesClients: Bool

    public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil) throws {
        let chain = try Self.certificates(certificatePath, option: "--tls-cert")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw ListenerTLSError("--tls-key \(keyPath): not a readable PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAPath {
            configuration.trustRoots = .certificates(try Self.certificates(clientCAPath, option: "--tls-client-ca"))
            // Clients are not named by a host name; their certificate must chain to the CA.
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration.certificateVerification = .none
        }
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw ListenerTLSError("--tls-cert and --tls-key do not make a TLS server (does the key belong to the certificate?): \(error)")
        }
        verifiesClients = clientCAPath != nil
    }

    /// The certificates of a PEM file, at least one, or an error naming `option`.
    static func certificates(_ path: String, option: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw ListenerTLSError("\(option) \(path): not a readable PEM certificate (\(error))")
        }
        guard !certificates.isEmpty else { throw ListenerTLSError("\(option) \(path): no certificate in the file") }
        return certificates
    }

    public var summary: String { verifiesClients ? "TLS, client certificates required" : "TLS" }

    public func refusal(_ error: any Error) -> String? {
        switch error {
        case let error as NIOSSLError:
            if case .handshakeFailed(let cause) = error { return "\(cause)" }
            return "\(error)"
        case let error as BoringSSLError: return "\(error)"
        default: return nil
        }
    }

    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
    }
}

public struct ListenerTLSError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
