/// A seeded schedule of faults for librdkafka's mock cluster (`fulfillment kafka-mock
/// --inject-faults`): brokers taken off the network for a moment, and requests answered with
/// the errors a real cluster gives during leader moves and overload. The same seed gives the
/// same schedule, so a failing chaos run replays. A plain value: tests read it without a cluster.
public struct MockClusterFaultSchedule: Sequence, IteratorProtocol, Sendable {
    public enum Fault: Equatable, Sendable, CustomStringConvertible {
        /// Broker `id` (1-based) refuses connections for the duration, then comes back.
        case brokerDown(id: Int, duration: Duration)
        /// The next requests of the API fail with these Kafka error codes, in order.
        case failRequests(api: MockAPI, errors: [MockError])

        public var description: String {
            switch self {
            case .brokerDown(let id, let duration): "broker \(id) down for \(duration)"
            case .failRequests(let api, let errors): "next \(errors.count) \(api) requests fail: \(errors.map(\.name).joined(separator: ", "))"
            }
        }
    }

    /// The request kinds faults are pushed to (Kafka's API keys).
    public enum MockAPI: Int16, CaseIterable, Sendable, CustomStringConvertible {
        case produce = 0, fetch = 1, offsetCommit = 8
        public var description: String {
            switch self {
            case .produce: "Produce"
            case .fetch: "Fetch"
            case .offsetCommit: "OffsetCommit"
            }
        }
    }

    /// Retriable errors clients meet on a healthy cluster (Kafka's codes).
    public enum MockError: Int32, CaseIterable, Sendable {
        case notLeaderOrFollower = 6, requestTimedOut = 7, notEnoughReplicas = 19, notCoordinator = 16

        public var name: String {
            switch self {
            case .notLeaderOrFollower: "NOT_LEADER_OR_FOLLOWER"
            case .requestTimedOut: "REQUEST_TIMED_OUT"
            case .notEnoughReplicas: "NOT_ENOUGH_REPLICAS"
            case .notCoordinator: "NOT_COORDINATOR"
            }
        }

        /// The errors each API's answer may carry.
        static func plausible(for api: MockAPI) -> [MockError] {
            switch api {
            case .produce: [.notLeaderOrFollower, .requestTimedOut, .notEnoughReplicas]
            case .fetch: [.notLeaderOrFollower, .requestTimedOut]
            case .offsetCommit: [.notCoordinator, .requestTimedOut]
            }
        }
    }

    /// One fault and how long to wait before it.
    public struct Step: Equatable, Sendable {
        public var after: Duration
        public var fault: Fault
    }

    private var random: SplitMix64
    private let brokers: Int
    private let interval: Duration
    private var remaining: Int

    /// `count` faults, on average `interval` apart, over `brokers` brokers.
    public init(seed: UInt64, brokers: Int, count: Int, interval: Duration) {
        random = SplitMix64(seed: seed)
        self.brokers = Swift.max(1, brokers)
        self.interval = interval
        remaining = Swift.max(0, count)
    }

    public mutating func next() -> Step? {
        guard remaining > 0 else { return nil }
        remaining -= 1
        let after = interval * Double.random(in: 0.5...1.5, using: &random)
        if Int.random(in: 0..<3, using: &random) == 0 {
            let id = Int.random(in: 1...brokers, using: &random)
            return Step(after: after, fault: .brokerDown(id: id, duration: .milliseconds(Int.random(in: 300...2_000, using: &random))))
        }
        let api = MockAPI.allCases.randomElement(using: &random)!
        let choices = MockError.plausible(for: api)
        let errors = (0..<Int.random(in: 1...5, using: &random)).map { _ in choices.randomElement(using: &random)! }
        return Step(after: after, fault: .failRequests(api: api, errors: errors))
    }
}

/// A small seeded generator (SplitMix64): the same seed, the same numbers, on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension KafkaMockCluster {
    /// Applies one fault; a broker taken down is brought back after its duration.
    public func inject(_ fault: MockClusterFaultSchedule.Fault) async throws {
        switch fault {
        case .brokerDown(let id, let duration):
            try setBroker(id, up: false)
            try? await Task.sleep(for: duration)
            try setBroker(id, up: true)
        case .failRequests(let api, let errors):
            failNextRequests(apiKey: api.rawValue, errors: errors.map(\.rawValue))
        }
    }
}
