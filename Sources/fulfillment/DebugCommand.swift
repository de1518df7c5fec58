import ArgumentParser
import Broker
import Foundation
import Logging
import Messaging

/// Tools for the crash tests; hidden from `--help`.
struct DebugCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Test helpers.",
        shouldDisplay: false,
        subcommands: [AppendForever.self]
    )

    /// Appends numbered records from several concurrent producers until killed, printing
    /// `ack <partition> <offset> <value>` for every acknowledged record. The SIGKILL crash
    /// test reopens the directory and checks every printed acknowledgement is there.
    struct AppendForever: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "append-forever")
        @OptionGroup var data: DataDirectoryOptions
        @Option var fsync: FsyncPolicy = .batch
        @Option var partitions = 3
        @Option var producers = 3
        @Option var segmentBytes: Int64 = 64 << 10

        func run() async throws {
            try await reportingFailures {
                var configuration = EmbeddedBroker.Configuration(dataDirectory: data.dataDir)
                configuration.fsync = fsync
                configuration.segmentBytes = segmentBytes
                let broker = try EmbeddedBroker(configuration: configuration, logger: Logger(label: "append"))
                try await broker.createTopic(TopicSpec(name: "crash", partitions: partitions))
                let start = try await broker.describeTopic("crash").partitions.reduce(Int64(0)) { $0 + $1.endOffset }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for producer in 0..<producers {
                        group.addTask {
                            var n = 0
                            while true {
                                let count = Int.random(in: 1...20)
                                let records = (0..<count).map { i in
                                    ProducerRecord(topic: "crash", key: "k\(producer)-\(n + i)", value: "v-\(start)-\(producer)-\(n + i)-" + String(repeating: "p", count: Int.random(in: 0...300)))
                                }
                                n += count
                                let acked = try await broker.produce(records)
                                var lines = ""
                                for (record, meta) in zip(records, acked) {
                                    lines += "ack \(meta.partition) \(meta.offset) \(String(decoding: record.value, as: UTF8.self))\n"
                                }
                                FileHandle.standardOutput.write(Data(lines.utf8))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }
}
