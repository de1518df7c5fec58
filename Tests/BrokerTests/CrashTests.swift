import Foundation
@testable import Messaging
import TestSupport
import Testing

/// A real child process (`fulfillment debug append-forever`) killed with SIGKILL.
@Suite(.serialized) struct CrashTests {
    struct Ack: Hashable {
        var partition: Int
        var offset: Int64
        var value: String
    }

    /// Starts the appender with stdout to a file; returns once it has acknowledged something.
    private func startAppender(_ dir: String, output: String, fsync: String = "batch") throws -> Process {
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let process = Process()
        process.executableURL = try fulfillmentExecutable()
        process.arguments = ["debug", "append-forever", "--data-dir", dir, "--fsync", fsync, "--partitions", "3", "--producers", "3"]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let size = try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int, size > 0 { return process }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        process.terminate()
        throw BrokerError(.io, "the appender acknowledged nothing within 20 s")
    }

    private func acks(_ output: String) throws -> [Ack] {
        let text = try String(contentsOfFile: output, encoding: .utf8)
        // Only whole lines count: a line cut by the kill was never fully reported.
        let complete = text.hasSuffix("\n") ? text : String(text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)])
        return complete.split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 3)
            return Ack(partition: Int(parts[1])!, offset: Int64(parts[2])!, value: String(parts[3]))
        }
    }

    @Test func everyAcknowledgedRecordSurvivesSigkillAtRandomMoments() async throws {
        let dir = TemporaryDirectory("crash")
        var acknowledged: [Ack] = []
        let rounds = 24
        for round in 0..<rounds {
            let output = dir.path + "-round-\(round).out"
            defer { try? FileManager.default.removeItem(atPath: output) }
            let process = try startAppender(dir.path, output: output)
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...300)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            acknowledged += try acks(output)

            // Reopen (recovery runs) and check every acknowledgement ever printed.
            let broker = try openBroker(dir.path)
            var stored: [Int: [ConsumerRecord]] = [:]
            for p in 0..<3 { stored[p] = try await readAll(broker, "crash", p) }
            for p in 0..<3 {
                let offsets = stored[p]!.map(\.offset)
                #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(p) is contiguous from 0")
                #expect(stored[p]!.allSatisfy { $0.valueString.hasPrefix("v-") }, "nothing stored is garbled")
            }
            var missing = 0
            for ack in acknowledged {
                let records = stored[ack.partition]!
                if ack.offset >= Int64(records.count) || records[Int(ack.offset)].valueString != ack.value { missing += 1 }
            }
            #expect(missing == 0, "round \(round): \(missing) of \(acknowledged.count) acknowledged records missing or different")
            broker.shutdown()
        }
        #expect(acknowledged.count > rounds, "the appender acknowledged records in the rounds")
    }

    @Test func aSecondWriterFailsAtOnceNamingTheHoldersPIDAndReadOnlyOpeningStillWorks() async throws {
        let dir = TemporaryDirectory("lock")
        let output = dir.path + "-lock.out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = try startAppender(dir.path, output: output)
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let start = ContinuousClock.now
        do {
            _ = try openBroker(dir.path)
            Issue.record("a second writer opened a locked data directory")
        } catch let error as BrokerError {
            #expect(error.code == .dataDirectoryLocked)
            #expect(error.message.contains("process \(process.processIdentifier)"))
            #expect(error.message.contains("append-forever"), "names the holder's command")
            #expect(error.message.contains("--data-dir"), "says what to do instead")
        }
        #expect(ContinuousClock.now - start < .seconds(2), "fails at once instead of waiting")

        let reader = try openBroker(dir.path, readOnly: true)
        let topics = try await reader.listTopics()
        #expect(topics.map(\.name) == ["crash"])
        #expect(try await readAll(reader, "crash", 0).allSatisfy { $0.valueString.hasPrefix("v-") })
    }

    @Test func theLockIsReleasedWhenTheOwnerIsKilled() async throws {
        let dir = TemporaryDirectory("relock")
        let output = dir.path + "-relock.out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = try startAppender(dir.path, output: output)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let broker = try openBroker(dir.path)
        broker.shutdown()
    }

    @Test func twoBrokersInOneProcessCannotShareADirectory() throws {
        let dir = TemporaryDirectory("same")
        let first = try openBroker(dir.path)
        #expect(throws: BrokerError.self) { _ = try openBroker(dir.path) }
        first.shutdown()
    }
}
