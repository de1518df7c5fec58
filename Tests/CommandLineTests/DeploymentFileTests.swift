import Foundation
import Testing
import Yams
@testable import fulfillment

/// docker-compose.yml cannot be started here (no Docker engine), so it is checked the way
/// Compose would read it: every service running the fulfillment image runs a real
/// `fulfillment` command whose flags parse, dependencies name real services, and the image the
/// Dockerfile builds has what those commands read.
@Suite struct DeploymentFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func compose() throws -> [String: Any] {
        let text = try String(contentsOf: Self.root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    @Test func everyFulfillmentServiceRunsARealCommandWithValidFlags() throws {
        let services = try #require(try compose()["services"] as? [String: [String: Any]])
        let ours = services.filter { ($0.value["image"] as? String)?.hasPrefix("fulfillment") == true }
        #expect(Set(ours.keys).isSuperset(of: ["topics", "dispatcher", "payment", "inventory", "shipping", "notification"]))
        for (name, service) in ours {
            let command = try #require(service["command"] as? [String], "\(name) has an exec-form command")
            if command == ["--help"] { continue }
            do {
                let parsed = try Fulfillment.parseAsRoot(command)
                #expect(!(parsed is Fulfillment), "\(name): '\(command.joined(separator: " "))' names a subcommand")
            } catch {
                Issue.record("\(name): '\(command.joined(separator: " "))' does not parse: \(Fulfillment.message(for: error))")
            }
        }
        // The payment step is scaled out, as the README says.
        let payment = try #require(ours["payment"])
        #expect((payment["deploy"] as? [String: Any])?["replicas"] as? Int == 2)
    }

    @Test func dependenciesAndHealthChecksAreWellFormed() throws {
        let services = try #require(try compose()["services"] as? [String: [String: Any]])
        for (name, service) in services {
            if let dependsOn = service["depends_on"] as? [String: Any] {
                for (dependency, condition) in dependsOn {
                    #expect(services[dependency] != nil, "\(name) depends on unknown service \(dependency)")
                    let wanted = (condition as? [String: Any])?["condition"] as? String
                    #expect(["service_healthy", "service_completed_successfully", "service_started"].contains(wanted ?? ""), "\(name) -> \(dependency): \(wanted ?? "no condition")")
                    if wanted == "service_healthy" { #expect(services[dependency]?["healthcheck"] != nil, "\(dependency) is waited on for health but has no healthcheck") }
                }
            }
            let command = service["command"] as? [String] ?? []
            if command.first == "dispatcher" || command.first == "worker" {
                #expect(service["healthcheck"] != nil, "\(name) has a health check")
                // The health check asks the process's own operator listener whether it is ready.
                let http = try #require(command.firstIndex(of: "--http").map { command[$0 + 1] }, "\(name) serves --http")
                let port = try #require(http.split(separator: ":").last.map(String.init))
                let test = ((service["healthcheck"] as? [String: Any])?["test"] as? [String])?.joined(separator: " ") ?? ""
                #expect(test.contains("http://127.0.0.1:\(port)/readyz"), "\(name)'s health check calls its /readyz: \(test)")
                if !http.hasPrefix("127.") && command.first == "dispatcher" {
                    #expect(command.contains("--admin-token-file"), "a dispatcher listening beyond loopback needs its admin token")
                }
                #expect(command.contains("--store") && command.contains("--brokers"))
            }
        }
        #expect(services["kafka"]?["image"] as? String == "apache/kafka:3.9.1")
        #expect((services["kafka"]?["environment"] as? [String: Any])?["KAFKA_PROCESS_ROLES"] as? String == "broker,controller", "Kafka runs in KRaft mode")
    }

    @Test func theImageCarriesTheConfigurationTheCommandsRead() throws {
        let dockerfile = try String(contentsOf: Self.root.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("COPY config /etc/fulfillment"))
        #expect(dockerfile.contains("librdkafka") && dockerfile.contains("libpq"))
        let services = try #require(try compose()["services"] as? [String: [String: Any]])
        for (_, service) in services {
            let command = service["command"] as? [String] ?? []
            if let index = command.firstIndex(of: "--config") {
                let path = command[index + 1]
                #expect(path.hasPrefix("/etc/fulfillment/"))
                let local = Self.root.appendingPathComponent("config").appendingPathComponent(String(path.dropFirst("/etc/fulfillment/".count)))
                #expect(FileManager.default.fileExists(atPath: local.path), "\(path) comes from config/ in the repository")
            }
        }
    }
}
