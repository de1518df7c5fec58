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
        limitMallocArenas()
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

/// glibc gives each thread that meets a locked arena a new one, up to 8 per core, and memory
/// freed in one arena is not reused by another: on `run --drain` of 200,000 orders the
/// default peaked at 382 MiB resident, one arena per core at 295 MiB, in the same time.
/// `MALLOC_ARENA_MAX` in the environment still wins.
private func limitMallocArenas() {
    guard ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil else { return }
    let arenaMax: Int32 = -8  // M_ARENA_MAX in <malloc.h>, which the Glibc module does not export
    _ = glibcMallopt(arenaMax, Int32(max(2, ProcessInfo.processInfo.activeProcessorCount)))
}

@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
