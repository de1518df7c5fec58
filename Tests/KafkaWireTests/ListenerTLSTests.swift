import Foundation
import Testing
import TestSupport

/// The Kafka listener over TLS, spoken to by kcat (librdkafka 2.0.2, OpenSSL) with
/// certificates `openssl` makes here: TLS, mutual TLS, plain-text and wrong-certificate
/// clients turned away, and the files checked before the broker listens.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ListenerTLSTests {
    /// A CA, a server certificate for 127.0.0.1 it signed, a client certificate it signed,
    /// and a client certificate from another CA.
    struct Certificates {
        let directory: String
        var ca: String { directory + "/ca.pem" }
        var serverCert: String { directory + "/server.pem" }
        var serverKey: String { directory + "/server.key" }
        var clientCert: String { directory + "/client.pem" }
        var clientKey: String { directory + "/client.key" }
        var rogueCert: String { directory + "/rogue-client.pem" }
        var rogueKey: String { directory + "/rogue-client.key" }

        init(in directory: String) throws {
            self.directory = directory
            func openssl(_ arguments: [String]) throws {
                let (status, _) = try KcatCompatibilityTests.run("/usr/bin/openssl", arguments)
                #expect(status == 0, "openssl \(arguments.joined(separator: " "))")
            }
            try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
            for ca in ["ca", "rogue-ca"] {
                try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(ca)",
                             "-keyout", "\(directory)/\(ca).key", "-out", "\(directory)/\(ca).pem"])
            }
            for (name, ca, ext) in [("server", "ca", true), ("client", "ca", false), ("rogue-client", "rogue-ca", false)] {
                try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=\(name)", "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr"])
                try openssl(["x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", "\(directory)/\(ca).pem", "-CAkey", "\(directory)/\(ca).key",
                             "-CAcreateserial", "-days", "2", "-out", "\(directory)/\(name).pem"] + (ext ? ["-extfile", directory + "/san.ext"] : []))
            }
        }
    }

    static let kcat = KcatCompatibilityTests.kcat

    /// kcat over TLS trusting the test CA, with a client certificate when given one.
    static func tlsClient(_ certificates: Certificates, cert: String? = nil, key: String? = nil) -> [String] {
        var arguments = ["-X", "security.protocol=ssl", "-X", "ssl.ca.location=\(certificates.ca)", "-X", "socket.timeout.ms=3000"]
        if let cert, let key { arguments += ["-X", "ssl.certificate.location=\(cert)", "-X", "ssl.key.location=\(key)"] }
        return arguments
    }

    @Test func kcatProducesAndConsumesOverTLSAndPlainTextIsTurnedAway() async throws {
        let temporary = TemporaryDirectory("tls")
        let certificates = try Certificates(in: temporary.path)
        let data = temporary.path + "/data"
        #expect(try runFulfillment(["topics", "create", "orders", "--partitions", "2", "--data-dir", data]).exitedCleanly)
        let (broker, port) = try await launchBroker(
            dataDirectory: data, log: temporary.path + "/broker.log", extra: ["--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey])
        defer { if broker.isRunning { broker.terminate(); broker.waitUntilExit() } }
        let log = try String(contentsOfFile: temporary.path + "/broker.log", encoding: .utf8)
        #expect(log.contains("Kafka protocol (TLS) on 127.0.0.1:"), "\(log)")
        let bootstrap = ["-b", "127.0.0.1:\(port)"]

        let lines = (0..<10).map { "order-\($0):{\"n\":\($0)}" }.joined(separator: "\n") + "\n"
        let (produced, _) = try KcatCompatibilityTests.run(Self.kcat, bootstrap + Self.tlsClient(certificates) + ["-P", "-t", "orders", "-K:"], input: lines)
        #expect(produced == 0)
        let (consumed, out) = try KcatCompatibilityTests.run(Self.kcat, bootstrap + Self.tlsClient(certificates) + ["-C", "-t", "orders", "-e", "-q", "-f", "%k=%s\\n"])
        #expect(consumed == 0)
        #expect(out.split(separator: "\n").map(String.init).sorted() == (0..<10).map { "order-\($0)={\"n\":\($0)}" }.sorted())

        // A plain-text client gets no metadata; a client that does not trust the CA neither.
        let (plain, _) = try KcatCompatibilityTests.run(Self.kcat, bootstrap + ["-L", "-m", "3"])
        #expect(plain != 0)
        let (untrusting, _) = try KcatCompatibilityTests.run(Self.kcat, bootstrap + ["-X", "security.protocol=ssl", "-X", "ssl.ca.location=\(certificates.directory)/rogue-ca.pem", "-L", "-m", "3"])
        #expect(untrusting != 0)
        #expect(broker.isRunning, "the broker outlives clients that fail the handshake")
        // Each client retried several times: the refusal is logged once for the address (a
        // connection already gone when it is served has no address, and is logged apart).
        let refusals = try String(contentsOfFile: temporary.path + "/broker.log", encoding: .utf8)
            .split(separator: "\n").filter { $0.contains("TLS handshake failed") && $0.contains("127.0.0.1") }
        #expect(refusals.count == 1, "\(refusals)")
        let (again, _) = try KcatCompatibilityTests.run(Self.kcat, bootstrap + Self.tlsClient(certificates) + ["-L", "-m", "3"])
        #expect(again == 0)
    }

    @Test func mutualTLSAdmitsOnlyClientsWithACertificateTheCASigned() async throws {
        let temporary = TemporaryDirectory("mtls")
        let certificates = try Certificates(in: temporary.path)
        let data = temporary.path + "/data"
        #expect(try runFulfillment(["topics", "create", "orders", "--partitions", "1", "--data-dir", data]).exitedCleanly)
        let (broker, port) = try await launchBroker(
            dataDirectory: data, log: temporary.path + "/broker.log",
            extra: ["--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey, "--tls-client-ca", certificates.ca])
        defer { if broker.isRunning { broker.terminate(); broker.waitUntilExit() } }
        let bootstrap = ["-b", "127.0.0.1:\(port)"]

        let (withCertificate, _) = try KcatCompatibilityTests.run(
            Self.kcat, bootstrap + Self.tlsClient(certificates, cert: certificates.clientCert, key: certificates.clientKey) + ["-P", "-t", "orders"], input: "one\ntwo\n")
        #expect(withCertificate == 0)
        let (without, _) = try KcatCompatibilityTests.run(Self.kcat, bootstrap + Self.tlsClient(certificates) + ["-L", "-m", "3"])
        #expect(without != 0, "no client certificate, no entry")
        let (rogue, _) = try KcatCompatibilityTests.run(
            Self.kcat, bootstrap + Self.tlsClient(certificates, cert: certificates.rogueCert, key: certificates.rogueKey) + ["-L", "-m", "3"])
        #expect(rogue != 0, "a certificate another CA signed, no entry")
        let (consumed, out) = try KcatCompatibilityTests.run(
            Self.kcat, bootstrap + Self.tlsClient(certificates, cert: certificates.clientCert, key: certificates.clientKey) + ["-C", "-t", "orders", "-e", "-q"])
        #expect(consumed == 0)
        #expect(out.split(separator: "\n") == ["one", "two"])
    }

    /// Bad files stop the broker before it listens, naming the option; an address other
    /// machines reach is allowed with client certificates, refused with TLS alone.
    @Test func badFilesAndAnonymousExposureAreRefusedByName() throws {
        let temporary = TemporaryDirectory("tls-refusals")
        let certificates = try Certificates(in: temporary.path)
        let data = temporary.path + "/data"
        func broker(_ arguments: [String]) throws -> FulfillmentResult {
            try runFulfillment(["broker", "--data-dir", data, "--listen", "127.0.0.1:0"] + arguments, limit: .seconds(30))
        }
        for (arguments, named) in [
            (["--tls-cert", temporary.path + "/missing.pem", "--tls-key", certificates.serverKey], "--tls-cert"),
            (["--tls-cert", certificates.serverCert, "--tls-key", certificates.serverCert], "--tls-key"),
            (["--tls-cert", certificates.serverCert, "--tls-key", certificates.clientKey], "does the key belong"),
            (["--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey, "--tls-client-ca", certificates.serverKey], "--tls-client-ca"),
            (["--tls-cert", certificates.serverCert], "--tls-cert and --tls-key go together"),
            (["--tls-client-ca", certificates.ca], "--tls-client-ca needs --tls-cert"),
        ] {
            let refused = try broker(arguments)
            #expect(refused.status != 0 && refused.reason == .exit, "\(arguments): \(refused.stderr)")
            #expect(refused.stderr.contains(named), "\(arguments): \(refused.stderr)")
        }
        let tlsOnly = try runFulfillment(
            ["broker", "--data-dir", data, "--listen", "0.0.0.0:0", "--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey], limit: .seconds(30))
        #expect(tlsOnly.status != 0 && tlsOnly.stderr.contains("--allow-anonymous"), "\(tlsOnly.stderr)")
    }

    @Test func anAddressOtherMachinesReachIsServedWithClientCertificates() async throws {
        let temporary = TemporaryDirectory("mtls-exposed")
        let certificates = try Certificates(in: temporary.path)
        let log = temporary.path + "/broker.log"
        let broker = try launchFulfillment(
            ["broker", "--data-dir", temporary.path + "/data", "--listen", "0.0.0.0:0", "--advertise", "127.0.0.1:9092",
             "--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey, "--tls-client-ca", certificates.ca],
            stdout: log + ".out", stderr: log)
        defer { if broker.isRunning { broker.terminate(); broker.waitUntilExit() } }
        let text = try await logText(log, once: "Kafka protocol (TLS, client certificates required) on 0.0.0.0:")
        #expect(text.contains("Kafka protocol (TLS, client certificates required) on 0.0.0.0:"), "\(text)")
    }
}
