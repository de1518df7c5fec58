import ArgumentParser

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
            KafkaMockCommand.self, BrokerCommand.self, BenchCommand.self, DebugCommand.self,
        ]
    )
}
