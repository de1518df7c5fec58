import Foundation
import Testing
import SagaDomain
@testable import StepFunctions

/// `import(export(c)) == c` for what ASL can hold: the steps' policies, the compensation
/// policy and the VIP threshold; with `c` as the import's base, the whole configuration.
@Suite struct RoundTripTests {
    static func configurations() throws -> [(String, SagaConfiguration)] {
        let root = Reference.repositoryRoot
        return [
            ("default", SagaConfiguration()),
            ("config/fulfillment.yaml", try SagaConfiguration.load(path: root.appendingPathComponent("config/fulfillment.yaml").path)),
            ("config/profiles/fast.yaml", try SagaConfiguration.load(path: root.appendingPathComponent("config/profiles/fast.yaml").path)),
        ]
    }

    @Test func exportThenImportGivesTheSameStepsCompensationAndVIPThreshold() throws {
        for (name, configuration) in try Self.configurations() {
            let exported = ASLExport(configuration: configuration).run()
            let definition = try ASLDefinition.parse(exported.text, source: name)
            let imported = try ASLImport().run(definition, source: name)
            #expect(imported.configuration.steps == configuration.steps, "\(name)")
            #expect(imported.configuration.compensation == configuration.compensation, "\(name)")
            #expect(imported.configuration.vipAmountThreshold == configuration.vipAmountThreshold, "\(name)")
            #expect(imported.unmapped.isEmpty, "\(name): \(imported.unmapped)")
            let onItsOwnBase = try ASLImport(base: configuration).run(definition, source: name)
            #expect(onItsOwnBase.configuration == configuration, "\(name)")
            #expect(try SagaConfiguration.parse(onItsOwnBase.yaml, source: name) == configuration, "\(name)")
        }
    }

    @Test func theExportedDefinitionIsValidAndLintsLikeItsConfiguration() throws {
        for (name, configuration) in try Self.configurations() where name != "config/profiles/fast.yaml" {
            let definition = try ASLDefinition.parse(ASLExport(configuration: configuration).run().text, source: name)
            let findings = SagaLint().findings(for: definition)
            #expect(!findings.contains { $0.severity != .info }, "\(name): \(findings.filter { $0.severity != .info })")
            #expect(!SagaLint.hasErrors(SagaLint().findings(for: configuration)), "\(name)")
        }
    }

    @Test func fractionsOfASecondTravelInCommentsBesideTheWholeSecondsASLNeeds() throws {
        let fast = try Self.configurations()[2].1
        let exported = ASLExport(configuration: fast).run()
        let definition = try ASLDefinition.parse(exported.text, source: "fast")
        let charge = try #require(definition.state(named: "ChargePayment"))
        let transient = try #require(charge.retry.last)
        #expect(transient.intervalSeconds == 1, "ASL takes whole seconds")
        #expect(transient.comment == "fulfillment exact: IntervalSeconds=0.1")
        #expect(transient.rule.intervalSeconds == 0.1)
        #expect(exported.notes.contains { $0.contains("HeartbeatSeconds rounds up") })
    }

    @Test func policiesOffTheDefaultPathSurviveTheRoundTrip() throws {
        var c = SagaConfiguration()
        c.vipAmountThreshold = 2_500.5
        c.steps[.inventory]?.compensateOn = ["OutOfStock", "Timeout"]
        c.steps[.inventory]?.undo = [.payment, .inventory]
        c.steps[.shipping]?.onExhausted = .park
        c.steps[.notification]?.compensateOn = ["MailboxUnavailable"]
        c.steps[.payment]?.undo = []
        c.steps[.payment]?.retry[0].jitter = .full
        c.steps[.payment]?.retry[0].maxDelaySeconds = 5
        c.compensation.heartbeatSeconds = 10
        let definition = try ASLDefinition.parse(ASLExport(configuration: c).run().text, source: "custom")
        let back = try ASLImport().run(definition, source: "custom").configuration
        #expect(back.steps == c.steps)
        #expect(back.compensation == c.compensation)
        #expect(back.vipAmountThreshold == 2_500.5)
        // Undo lists that end differently get states of their own; alike endings share them.
        #expect(definition.state(named: "RefundPayment (2)")?.next == "OrderCompensated")
        #expect(definition.state(named: "ReleaseInventory (2)")?.next == "RefundPayment (2)")
        #expect(definition.state(named: "RefundPayment")?.next == "ReleaseInventory")
        #expect(definition.state(named: "ManualReview") != nil, "shipping parks")
    }

    @Test func theYAMLWriterReadsBackEveryShippedConfiguration() throws {
        for (name, configuration) in try Self.configurations() {
            let yaml = configuration.yaml(header: ["from \(name)", "two\nlines"])
            #expect(yaml.hasPrefix("# from \(name)\n# two\n# lines\n"))
            #expect(try SagaConfiguration.parse(yaml, source: name) == configuration, "\(name):\n\(yaml)")
        }
        var odd = SagaConfiguration()
        odd.topicPrefix = "shop: \"1\" #"
        odd.steps[.payment]?.nonRetryable = ["yes", "123", "Card Declined", "naïve"]
        odd.faultProfiles["custom"] = FaultProfile(name: "custom", steps: [.payment: StepFaults(transient: 0.25)])
        #expect(try SagaConfiguration.parse(odd.yaml(), source: "odd") == odd)
    }
}
