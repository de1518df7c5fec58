import Foundation
import TestSupport
import Testing

/// No secret the user hands us (a PostgreSQL password, a librdkafka `sasl.password`, the admin
/// token) comes back out in a log line, an error message or `--help`: each command below is
/// given one and fails or runs, and its whole output is searched for it.
@Suite(.serialized) struct SecretLeakTests {
    func expectNotShown(_ secret: String, in result: FulfillmentResult, _ what: String) {
        let all = result.output + result.stderr
        #expect(!all.contains(secret), "\(what) printed the secret: \(all.prefix(1500))")
        #expect(!all.isEmpty || result.status == 0, "\(what) said nothing at all")
    }

    @Test func aPostgreSQLPasswordIsRedactedFromConnectionErrors() throws {
        let result = try runFulfillment(["check", "--store", "postgres://saga:Pg-Secret-1@127.0.0.1:1/fulfillment"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("postgres://saga:***@127.0.0.1:1/fulfillment"), "\(result.stderr)")
        expectNotShown("Pg-Secret-1", in: result, "check with an unreachable PostgreSQL")
    }

    @Test func librdkafkaSecretsStayOutOfDebugLogsAndConfigurationErrors() throws {
        let sasl = ["-X", "security.protocol=sasl_plaintext", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=saga"]
        let unreachable = try runFulfillment(
            ["produce", "--generate", "1", "--brokers", "127.0.0.1:1", "--timeout", "2", "--log-level", "debug", "-X", "sasl.password=Kafka-Secret-2"] + sasl)
        #expect(unreachable.status != 0)
        expectNotShown("Kafka-Secret-2", in: unreachable, "produce to an unreachable cluster with SASL")

        let refused = try runFulfillment(["produce", "--generate", "1", "--brokers", "127.0.0.1:1", "--timeout", "2", "-X", "ssl.key.password=Kafka-Secret-3", "-X", "ssl.key.location=/nonexistent"])
        #expect(refused.status != 0)
        expectNotShown("Kafka-Secret-3", in: refused, "a librdkafka property librdkafka refuses")

        let malformed = try runFulfillment(["produce", "--generate", "1", "--brokers", "127.0.0.1:1", "-X", "sasl.password:Kafka-Secret-4"])
        #expect(malformed.status != 0)
        expectNotShown("Kafka-Secret-4", in: malformed, "a malformed -X holding a password")

        let directory = TemporaryDirectory("secrets")
        let properties = directory.path + "/kafka.properties"
        try "bootstrap.servers=127.0.0.1:1\nsasl.password Kafka-Secret-5\n".write(toFile: properties, atomically: true, encoding: .utf8)
        let badFile = try runFulfillment(["produce", "--generate", "1", "--brokers", "127.0.0.1:1", "--kafka-config", properties])
        #expect(badFile.status != 0)
        #expect(badFile.stderr.contains("kafka.properties:2"), "the line is named: \(badFile.stderr)")
        expectNotShown("Kafka-Secret-5", in: badFile, "a properties file with a malformed password line")
    }

    /// A given token is never echoed; a generated one goes to a 0600 file, not to stderr.
    @Test func adminTokensAreNeverPrinted() throws {
        let directory = TemporaryDirectory("secrets-token")
        let tokenFile = directory.path + "/token"
        try "Admin-Secret-Token-6-abcdef\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let given = try runFulfillment(["run", "--orders", "20", "--data-dir", directory.path + "/given", "--http", "127.0.0.1:0", "--admin-token-file", tokenFile])
        #expect(given.status == 0, "\(given.stderr)")
        expectNotShown("Admin-Secret-Token-6-abcdef", in: given, "run with --admin-token-file")

        let generated = try runFulfillment(["run", "--orders", "20", "--data-dir", directory.path + "/generated", "--http", "127.0.0.1:0"])
        #expect(generated.status == 0, "\(generated.stderr)")
        let token = try String(contentsOfFile: directory.path + "/generated/admin-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.count >= 16)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.path + "/generated/admin-token")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        expectNotShown(token, in: generated, "run generating a token")
    }

    @Test func helpShowsNoSecretDefaults() throws {
        for command in ["run", "broker", "dispatcher", "worker", "produce", "check"] {
            let help = try runFulfillment(["help", command])
            #expect(help.status == 0)
            for line in (help.output + help.stderr).split(separator: "\n") where line.lowercased().contains("default:") {
                #expect(!line.lowercased().contains("password="), "\(command): \(line)")
                #expect(!line.contains(":***@") && !line.contains("Bearer "), "\(command): \(line)")
            }
        }
    }
}
