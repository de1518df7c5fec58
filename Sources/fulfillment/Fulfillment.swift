import ArgumentParser
import Foundation

/// The `fulfillment` executable: argument parsing only; every command calls library code.
@main
struct Fulfillment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fulfillment",
        abstract: "The order-fulfillment saga on Kafka: embedded broker, workers, retries, compensation.",
        discussion: """
            Exit codes: 0 ok, 1 a check failed, 2 usage or runtime error.
            """,
        subcommands: [
            RunCommand.self, ProduceCommand.self, DlqCommand.self, OrderCommand.self, StatsCommand.self, CheckCommand.self,
            GraphCommand.self, ExplainCommand.self, TopicsCommand.self, WorkerCommand.self, DispatcherCommand.self,
            KafkaMockCommand.self, BrokerCommand.self, UsersCommand.self, BenchCommand.self, AlertsCommand.self, ASLCommand.self, LintCommand.self, DebugCommand.self,
        ]
    )

    /// Exit codes are the contract's: 0 ok, 1 a check failed (or orders were left in
    /// flight), 2 a usage or runtime error. ArgumentParser's own would say 64 for a usage
    /// error and 1 for any other failure.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode where exit == .success || exit.rawValue == 1 || exit.rawValue == 2 {
            Self.exit(withError: exit)
        } catch {
            guard exitCode(for: error) != .success else { Self.exit(withError: error) }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Self.exit(withError: ExitCode(2))
        }
    }
}
