import ArgumentParser
import Broker
import Foundation
import Logging
import Messaging
import SagaDomain
import Synchronization

/// A runtime failure reported the way every command reports it: one line saying what went
/// wrong and what to do, exit code 2.
struct CommandFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension AsyncParsableCommand {
    /// Runs `body`, turning broker and other errors into a message on stderr and exit code 2.
    func reportingFailures(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as ExitCode {
            throw error
        } catch let error as CommandFailure {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode(2)
        } catch let error as ConfigurationError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode(2)
        } catch let error as BrokerError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func writeStderr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

extension FsyncPolicy: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
    public static var allValueStrings: [String] { ["always", "batch", "interval:MS", "never"] }
}

/// `HOST:PORT` of a `--listen` option.
func parseListenAddress(_ text: String) throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port), colon != text.startIndex else {
        throw CommandFailure(message: "--listen must look like HOST:PORT (e.g. 127.0.0.1:9092), got '\(text)'")
    }
    return (String(text[..<colon]), port)
}

/// A logger to stderr for notices and worse: for what a command runs that would otherwise
/// log its routine to stdout, where the command prints its output.
func quietLogger(_ label: String) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = .notice
    return logger
}

/// Progress of long work on stderr: one line rewritten in place on a terminal, nothing when
/// stderr is not a terminal (a log, a pipe) or the output is `--json`. Notices (said once)
/// print on their own line either way, above the progress line.
final class ProgressLine: Sendable {
    let enabled: Bool
    private let current = Mutex<String?>(nil)

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ line: String) {
        guard enabled else { return }
        current.withLock { current in
            current = line
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        }
    }

    func say(_ line: String) {
        current.withLock { current in
            if enabled && current != nil { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            FileHandle.standardError.write(Data((line + "\n").utf8))
            if enabled, let current { FileHandle.standardError.write(Data(current.utf8)) }
        }
    }

    /// Ends the progress line so what follows starts on a fresh one.
    func finish() {
        current.withLock { current in
            if enabled && current != nil { FileHandle.standardError.write(Data("\n".utf8)) }
            current = nil
        }
    }
}
