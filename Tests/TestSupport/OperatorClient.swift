import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A `fulfillment` process with its operator listener: launched, and listening on the port it
/// reports on stderr ("HTTP on http://127.0.0.1:PORT").
public func launchWithHTTP(_ arguments: [String], log: String) async throws -> (process: Process, port: Int) {
    let process = try launchFulfillment(arguments, stdout: log + ".stdout", stderr: log)
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        if let range = text.range(of: "HTTP on http://127.0.0.1:") {
            let digits = text[range.upperBound...].prefix { $0.isNumber }
            if let port = Int(digits) { return (process, port) }
        }
        if !process.isRunning { break }
        try await Task.sleep(for: .milliseconds(50))
    }
    if process.isRunning { process.terminate() }
    throw TestSupportError("`fulfillment \(arguments.first ?? "")` did not report its HTTP listener: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
}

/// Plain HTTP requests to a loopback listener, for the operator API's tests.
public struct OperatorClient: Sendable {
    public let base: String
    public var token: String?

    public init(port: Int, token: String? = nil) {
        base = "http://127.0.0.1:\(port)"
        self.token = token
    }

    public struct Answer: Sendable {
        public var status: Int
        public var body: Data
        public var headers: [String: String]
        public var text: String { String(decoding: body, as: UTF8.self) }
        /// The body as a JSON object (an empty one when it is not).
        public var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
    }

    public func get(_ path: String) async throws -> Answer { try await send("GET", path, body: nil) }

    public func post(_ path: String, _ body: Data, authorized: Bool = true) async throws -> Answer {
        try await send("POST", path, body: body, authorized: authorized)
    }

    public func send(_ method: String, _ path: String, body: Data?, authorized: Bool = true, headers: [String: String] = [:]) async throws -> Answer {
        var request = URLRequest(url: URL(string: base + path)!, timeoutInterval: 30)
        request.httpMethod = method
        request.httpBody = body
        if authorized, let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields["\(key)".lowercased()] = "\(value)" }
        return Answer(status: http.statusCode, body: data, headers: fields)
    }
}
