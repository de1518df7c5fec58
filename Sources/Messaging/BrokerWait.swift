/// Waiting out a broker that is not there yet, or briefly away: a call is retried with
/// backoff while its error is retriable (transport failure, timeout, leader or coordinator
/// not available), until a deadline.
public enum BrokerWait {
    /// Runs `body` until it succeeds, a non-retriable error comes, or `timeout` has passed
    /// (then the last error is thrown, wrapped to name `target`). `status` hears what is
    /// waited for, at most once per 2 s.
    public static func retrying<T: Sendable>(
        _ what: String, target: String, timeout: Duration, status: @escaping @Sendable (String) -> Void = { _ in },
        _ body: () async throws -> T
    ) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var delay = Duration.milliseconds(100)
        var lastStatus: ContinuousClock.Instant?
        while true {
            do {
                // A client that blocks inside one attempt (librdkafka waits for a broker
                // before it answers) is reported after a second, not only after it fails.
                let started = clock.now
                let reporter = Task {
                    try await Task.sleep(for: .seconds(1))
                    while true {
                        let left = deadline - clock.now
                        status("waiting for \(target) (\(what)); giving up in \(max(0, left.components.seconds)) s")
                        try await Task.sleep(for: .seconds(5))
                    }
                }
                defer { reporter.cancel() }
                let value = try await body()
                if clock.now - started >= .seconds(1) { status("\(target) answered") }
                return value
            } catch let error as BrokerError where error.isRetriable && !error.isFatal {
                let now = clock.now
                guard now < deadline else {
                    throw BrokerError(error.code, "\(what): gave up after \(timeout) waiting for \(target): \(error.message)")
                }
                if lastStatus.map({ now - $0 >= .seconds(2) }) ?? true {
                    lastStatus = now
                    let left = deadline - now
                    status("waiting for \(target) (\(what): \(error.message)); retrying for \(left.components.seconds) s more")
                }
                try await Task.sleep(for: min(delay, deadline - now))
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}
