import Foundation
import TestSupport
import Testing

/// The web console in a real browser: `Console/console_suite.py` drives Debian's chromium
/// (headless, chromium-driver, Selenium from PyPI; `make test` installs them) against a
/// `fulfillment run` serving its console, and saves a screenshot per check under
/// `.build/ui-screenshots/`.
@Suite struct ConsoleBrowserTests {
    @Test func theConsoleShowsTheSagaLiveRedrivesAndRendersHostileFieldsAsText() async throws {
        let directory = TemporaryDirectory("console")
        // The fast profile, with payments that run out of retries parked for manual review (so
        // a dead letter can be redriven from the page and its order still complete).
        var yaml = try String(contentsOfFile: OperatorSurfaceTests.fast, encoding: .utf8)
        let payment = "  payment:\n    timeout_seconds: 1\n"
        #expect(yaml.contains(payment))
        yaml = yaml.replacingOccurrences(of: payment, with: payment + "    on_exhausted: park\n")
        let config = directory.path + "/console.yaml"
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let data = directory.path + "/data"
        let (process, port) = try await launchWithHTTP(
            ["run", "--data-dir", data, "--config", config, "--http", "127.0.0.1:0", "--allow-lint-errors"], log: directory.path + "/run.log")
        defer { OperatorSurfaceTests.stop(process) }

        let suite = SagaHarness.repositoryRoot.appendingPathComponent("Tests/SagaAssemblyTests/Console/console_suite.py").path
        let screenshots = SagaHarness.repositoryRoot.appendingPathComponent(".build/ui-screenshots").path
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", suite, "http://127.0.0.1:\(port)", data + "/admin-token", data, try fulfillmentExecutable().path, config, screenshots]
        var environment = ProcessInfo.processInfo.environment
        environment["SE_AVOID_STATS"] = "true"
        python.environment = environment
        let output = Pipe()
        python.standardOutput = output
        python.standardError = output
        try python.run()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        #expect(python.terminationStatus == 0, "\(said)\n--- run.log\n\((try? String(contentsOfFile: directory.path + "/run.log", encoding: .utf8))?.suffix(3000) ?? "")")
        for check in ["check_overview", "check_graph", "check_timeline", "check_redrive", "check_hostile", "check_topics"] {
            #expect(said.contains("ok \(check)"), "\(check) did not pass: \(said)")
        }
    }
}
