import Foundation

/// One run of the `fulfillment` executable as a child process, finished.
public struct FulfillmentResult: Sendable {
    public var status: Int32
    public var reason: Process.TerminationReason
    public var stdout: Data
    public var stderr: String
    public var output: String { String(decoding: stdout, as: UTF8.self) }
    public var exitedCleanly: Bool { reason == .exit && status == 0 }
}

/// Runs `fulfillment ARGUMENTS` to its end, with `input` on stdin; output goes through
/// temporary files (no pipe to fill up). A run still going after `limit` (a command that
/// should have refused to start, a hang) is killed, so the test fails instead of hanging
/// the suite; the result then says `.uncaughtSignal`, status 9.
public func runFulfillment(_ arguments: [String], input: Data? = nil, limit: Duration = .seconds(300)) throws -> FulfillmentResult {
    let scratch = NSTemporaryDirectory() + "fulfillment-run-\(UUID().uuidString.prefix(8))"
    defer { for suffix in [".stdout", ".stderr", ".stdin"] { try? FileManager.default.removeItem(atPath: scratch + suffix) } }
    let process = try launchFulfillment(arguments, stdout: scratch + ".stdout", stderr: scratch + ".stderr", input: input.map { ($0, scratch + ".stdin") })
    let deadline = ContinuousClock.now + limit
    while process.isRunning, ContinuousClock.now < deadline { usleep(5_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    return FulfillmentResult(
        status: process.terminationStatus, reason: process.terminationReason,
        stdout: (try? Data(contentsOf: URL(fileURLWithPath: scratch + ".stdout"))) ?? Data(),
        stderr: (try? String(contentsOfFile: scratch + ".stderr", encoding: .utf8)) ?? "")
}

/// Starts `fulfillment ARGUMENTS` in the background, its output into the files named.
public func launchFulfillment(_ arguments: [String], stdout: String, stderr: String, input: (Data, String)? = nil) throws -> Process {
    let process = Process()
    process.executableURL = try fulfillmentExecutable()
    process.arguments = arguments
    _ = FileManager.default.createFile(atPath: stdout, contents: nil)
    _ = FileManager.default.createFile(atPath: stderr, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdout))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
    if let (data, path) = input {
        try data.write(to: URL(fileURLWithPath: path))
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    try process.run()
    return process
}

/// The text of `log` once it contains `expected`, or all of it after `seconds` (the caller's
/// expectation then fails with the log in hand).
public func logText(_ log: String, once expected: String, seconds: Double = 10) async throws -> String {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    var text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    while !text.contains(expected), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(100))
        text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    }
    return text
}

/// A loopback port nothing listens on now (for a server a test starts).
public func freeLoopbackPort() -> Int {
    while true {
        let port = Int.random(in: 20_000...45_000)
        if !Loopback.isListening(port: port) { return port }
    }
}

/// `fulfillment broker` serving `dataDirectory`, launched and listening: on `port`, or with
/// port 0 on a free port the broker picks and reports (no guessing, no race with other
/// servers). Its stderr goes to `log`. Restart it with the port it returned.
public func launchBroker(dataDirectory: String, port: Int = 0, log: String, extra: [String] = []) async throws -> (process: Process, port: Int) {
    let process = try launchFulfillment(
        ["broker", "--data-dir", dataDirectory, "--listen", "127.0.0.1:\(port)"] + extra, stdout: log + ".stdout", stderr: log)
    let deadline = ContinuousClock.now + .seconds(15)
    while ContinuousClock.now < deadline {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        // "Kafka protocol on 127.0.0.1:PORT," or "Kafka protocol (TLS) on 127.0.0.1:PORT,".
        if let start = text.range(of: "Kafka protocol"), let range = text[start.upperBound...].range(of: " on 127.0.0.1:") {
            let digits = text[range.upperBound...].prefix { $0.isNumber }
            if let bound = Int(digits), text[range.upperBound...].dropFirst(digits.count).first == "," { return (process, bound) }
        }
        if !process.isRunning { break }
        try await Task.sleep(for: .milliseconds(50))
    }
    if process.isRunning { process.terminate() }
    throw BrokerLaunchFailure(message: "`fulfillment broker` did not report listening: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
}

public struct BrokerLaunchFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
