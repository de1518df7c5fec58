import Foundation
import Testing
import TestSupport

/// SASL on the Kafka listener through real clients: `fulfillment users add` writes the users
/// file (password from stdin), the broker serves SASL_SSL, and kcat (Debian's librdkafka)
/// and confluent-kafka (PyPI's) log in with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, are
/// refused with a wrong password, and meet TOPIC_AUTHORIZATION_FAILED outside their grants.
@Suite(.serialized, .timeLimit(.minutes(4))) struct ListenerSASLTests {
    static let storefrontPassword = "shop-\(UUID().uuidString.prefix(12))"
    static let opsPassword = "ops,=\\pa ss-\(UUID().uuidString.prefix(12))"

    /// A users file with storefront (produce orders, orders.priority) and ops (read all, admin).
    static func usersFile(in directory: String) throws -> String {
        let path = directory + "/users.json"
        let storefront = try runFulfillment(
            ["users", "add", "storefront", "--users", path, "--produce", "orders", "--produce", "orders.priority"],
            input: Data((storefrontPassword + "\n").utf8), limit: .seconds(60))
        #expect(storefront.exitedCleanly, "\(storefront.stderr)")
        #expect(storefront.output.contains("added storefront") && storefront.output.contains("produce to orders, orders.priority"), "\(storefront.output)")
        let ops = try runFulfillment(["users", "add", "ops", "--users", path, "--consume", "*", "--admin"], input: Data((opsPassword + "\n").utf8), limit: .seconds(60))
        #expect(ops.exitedCleanly, "\(ops.stderr)")
        return path
    }

    static func kcat(_ port: Int, _ certificates: ListenerTLSTests.Certificates, user: String, password: String, mechanism: String = "SCRAM-SHA-512") -> [String] {
        ["-b", "127.0.0.1:\(port)", "-X", "security.protocol=sasl_ssl", "-X", "ssl.ca.location=\(certificates.ca)", "-X", "sasl.mechanisms=\(mechanism)",
         "-X", "sasl.username=\(user)", "-X", "sasl.password=\(password)", "-X", "socket.timeout.ms=5000", "-X", "message.timeout.ms=5000"]
    }

    @Test func theUsersFileKeepsNoPasswordAndOnlyItsOwnerReadsIt() throws {
        let temporary = TemporaryDirectory("sasl-users")
        let path = try Self.usersFile(in: temporary.path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains(Self.storefrontPassword) && !text.contains(Self.opsPassword))
        #expect(text.contains("scram_sha_512") && text.contains("stored_key"))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let listed = try runFulfillment(["users", "list", "--users", path])
        #expect(listed.output.contains("storefront\tproduce: orders,orders.priority\tconsume: -") && listed.output.contains("ops\tproduce: -\tconsume: *\tadmin"), "\(listed.output)")
        let empty = try runFulfillment(["users", "add", "x", "--users", path], input: Data("\n".utf8))
        #expect(empty.status == 2 && empty.stderr.contains("password is empty"), "\(empty.stderr)")
        let removed = try runFulfillment(["users", "remove", "ops", "--users", path])
        let remaining = try String(contentsOfFile: path, encoding: .utf8)
        #expect(removed.exitedCleanly && !remaining.contains("\"ops\""))
    }

    @Test func kcatAndConfluentKafkaAuthenticateAndMeetTheirGrants() async throws {
        let temporary = TemporaryDirectory("sasl")
        let certificates = try ListenerTLSTests.Certificates(in: temporary.path)
        let users = try Self.usersFile(in: temporary.path)
        let data = temporary.path + "/data"
        for topic in ["orders", "payment.requested"] {
            #expect(try runFulfillment(["topics", "create", topic, "--partitions", "1", "--data-dir", data]).exitedCleanly)
        }
        let log = temporary.path + "/broker.log"
        let (broker, port) = try await launchBroker(
            dataDirectory: data, log: log, extra: ["--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey, "--users", users])
        defer { if broker.isRunning { broker.terminate(); broker.waitUntilExit() } }
        #expect(try String(contentsOfFile: log, encoding: .utf8).contains("Kafka protocol (TLS, SASL) on 127.0.0.1:"))
        let run = KcatCompatibilityTests.run
        let kcat = KcatCompatibilityTests.kcat

        // kcat: SCRAM-SHA-512 and SCRAM-SHA-256 produce; ops reads it back.
        #expect(try run(kcat, Self.kcat(port, certificates, user: "storefront", password: Self.storefrontPassword) + ["-P", "-t", "orders"], "a\nb\n").0 == 0)
        #expect(try run(kcat, Self.kcat(port, certificates, user: "storefront", password: Self.storefrontPassword, mechanism: "SCRAM-SHA-256") + ["-P", "-t", "orders"], "c\n").0 == 0)
        let (read, out) = try run(kcat, Self.kcat(port, certificates, user: "ops", password: Self.opsPassword, mechanism: "PLAIN") + ["-C", "-t", "orders", "-e", "-q"], nil)
        #expect(read == 0 && out.split(separator: "\n") == ["a", "b", "c"], "\(out)")
        // Wrong password, no SASL at all, a topic outside the grants: refused.
        #expect(try run(kcat, Self.kcat(port, certificates, user: "storefront", password: "wrong") + ["-L", "-m", "4"], nil).0 != 0)
        #expect(try run(kcat, Self.kcat(port, certificates, user: "nobody", password: "x") + ["-L", "-m", "4"], nil).0 != 0)
        #expect(try run(kcat, ["-b", "127.0.0.1:\(port)"] + ListenerTLSTests.tlsClient(certificates) + ["-L", "-m", "4"], nil).0 != 0, "TLS without SASL")
        #expect(try run(kcat, Self.kcat(port, certificates, user: "storefront", password: Self.storefrontPassword) + ["-P", "-t", "payment.requested"], "x\n").0 != 0)
        let (_, unread) = try run(kcat, Self.kcat(port, certificates, user: "ops", password: Self.opsPassword) + ["-C", "-t", "payment.requested", "-e", "-q"], nil)
        #expect(unread.isEmpty, "nothing reached payment.requested: \(unread)")

        // confluent-kafka over SASL_SSL, with the error codes it exposes.
        let (status, output) = try await PythonClientTests.python(
            "sasl_suite.py", ["127.0.0.1:\(port)", certificates.ca, Self.storefrontPassword, Self.opsPassword])
        #expect(status == 0 && output.hasSuffix("OK\n"), "\(output)")

        // No password in the broker's log; a failed login logged once for the address.
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(!text.contains(Self.storefrontPassword) && !text.contains(Self.opsPassword))
        #expect(text.split(separator: "\n").filter { $0.contains("SASL authentication failed") && $0.contains("127.0.0.1") }.count == 1, "\(text)")
    }

    @Test func aReachableListenerWithUsersNeedsNoAllowAnonymousAndBadFilesAreRefused() async throws {
        let temporary = TemporaryDirectory("sasl-start")
        let users = try Self.usersFile(in: temporary.path)
        let missing = try runFulfillment(["broker", "--data-dir", temporary.path + "/d", "--listen", "127.0.0.1:0", "--users", temporary.path + "/none.json"], limit: .seconds(30))
        #expect(missing.status == 2 && missing.stderr.contains("no such file"), "\(missing.stderr)")
        try "{not json".write(toFile: temporary.path + "/bad.json", atomically: true, encoding: .utf8)
        let bad = try runFulfillment(["broker", "--data-dir", temporary.path + "/d", "--listen", "127.0.0.1:0", "--users", temporary.path + "/bad.json"], limit: .seconds(30))
        #expect(bad.status == 2 && bad.stderr.contains("not a users file"), "\(bad.stderr)")

        let log = temporary.path + "/exposed.log"
        let broker = try launchFulfillment(
            ["broker", "--data-dir", temporary.path + "/d", "--listen", "0.0.0.0:0", "--advertise", "127.0.0.1:9092", "--users", users], stdout: log + ".out", stderr: log)
        defer { if broker.isRunning { broker.terminate(); broker.waitUntilExit() } }
        let text = try await logText(log, once: "Kafka protocol (SASL) on 0.0.0.0:")
        #expect(text.contains("Kafka protocol (SASL) on 0.0.0.0:"), "\(text)")
        #expect(text.contains("SASL without TLS"), "a note that PLAIN passwords and records cross in clear: \(text)")
    }
}
