import CRdKafka
import Foundation
import Messaging

/// How to reach a Kafka cluster: the bootstrap servers plus any librdkafka property, passed
/// through unchanged so SASL, TLS and tuning work the way Kafka users expect
/// (`-X security.protocol=SASL_SSL`, a properties file, ...).
public struct KafkaConfiguration: Sendable, Hashable {
    /// `host:port,host:port`.
    public var bootstrapServers: String
    /// librdkafka properties (CONFIGURATION.md); they override the client's defaults.
    public var properties: [String: String]

    public init(bootstrapServers: String, properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
    }

    /// Parses one `key=value` pair (the `-X` flag).
    public static func parseProperty(_ text: String) throws -> (String, String) {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw BrokerError(.invalidConfiguration, "librdkafka property '\(looksSecret(text) ? "(hidden: it looks like a secret)" : text)' must look like key=value")
        }
        return (String(text[..<equals]).trimmingCharacters(in: .whitespaces), String(text[text.index(after: equals)...]).trimmingCharacters(in: .whitespaces))
    }

    /// Reads a Java-style properties file: `key=value` lines, `#` and `!` comments, blank lines.
    public static func loadProperties(path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BrokerError(.invalidConfiguration, "cannot read Kafka properties file \(path)")
        }
        var properties: [String: String] = [:]
        for (number, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            do {
                let (key, value) = try parseProperty(line)
                properties[key] = value
            } catch {
                throw BrokerError(.invalidConfiguration, "\(path):\(number + 1): expected key=value, found '\(looksSecret(line) ? "(hidden: it looks like a secret)" : line)'")
            }
        }
        return properties
    }

    /// A librdkafka configuration object: `defaults`, then the bootstrap servers, then the
    /// user's properties. The caller owns the result until `rd_kafka_new` takes it.
    func makeConf(defaults: [(String, String)]) throws -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        do {
            for (key, value) in defaults { try Self.set(conf, key, value) }
            try Self.set(conf, "bootstrap.servers", bootstrapServers)
            for (key, value) in properties.sorted(by: { $0.key < $1.key }) { try Self.set(conf, key, value) }
        } catch {
            rd_kafka_conf_destroy(conf)
            throw error
        }
        return conf
    }

    static func set(_ conf: OpaquePointer, _ key: String, _ value: String) throws {
        var message = [CChar](repeating: 0, count: 512)
        if rd_kafka_conf_set(conf, key, value, &message, message.count) != RD_KAFKA_CONF_OK {
            throw BrokerError(.invalidConfiguration, "librdkafka property \(key)=\(looksSecret(key) ? "***" : value): \(KafkaConfiguration.text(message))")
        }
    }

    /// Whether a property (or a line holding one) may carry a secret (sasl.password,
    /// ssl.key.password, sasl.oauthbearer.client.secret, ssl.keystore.password, …): such values
    /// are never repeated in an error message.
    public static func looksSecret(_ text: String) -> Bool {
        let lower = text.lowercased()
        return ["password", "secret", "token", "jaas", "ssl.key.pem", "credential"].contains { lower.contains($0) }
    }

    /// The text librdkafka wrote into an error buffer.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
