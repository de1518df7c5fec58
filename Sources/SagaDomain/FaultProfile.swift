/// Injected faults for the simulated outside world (payment gateway, carrier, mail), per step.
/// Probabilities are per attempt; draws are seeded by the idempotency key and attempt, so a
/// run with the same orders fails the same way every time.
public struct StepFaults: Codable, Hashable, Sendable {
    /// A retryable error (`TransientError`).
    public var transient: Double = 0
    /// The call hangs until cancelled (the step's timeout or missed heartbeats catch it).
    public var hang: Double = 0
    /// A permanent, non-retryable failure (payment: `CardDeclined`; others: `PermanentError`).
    public var permanent: Double = 0
    /// Compensation (refund, release, cancel) fails with `TransientError`.
    public var undoFailure: Double = 0
    /// Simulated latency of each call, in milliseconds.
    public var latencyMilliseconds: LatencyDistribution = .init()

    public init(transient: Double = 0, hang: Double = 0, permanent: Double = 0, undoFailure: Double = 0, latencyMilliseconds: LatencyDistribution = .init()) {
        self.transient = transient
        self.hang = hang
        self.permanent = permanent
        self.undoFailure = undoFailure
        self.latencyMilliseconds = latencyMilliseconds
    }
}

/// A log-normal-ish latency: `p50` typical, `p99` tail.
public struct LatencyDistribution: Codable, Hashable, Sendable {
    public var p50: Double = 0
    public var p99: Double = 0

    public init(p50: Double = 0, p99: Double = 0) {
        self.p50 = p50
        self.p99 = p99
    }

    /// The latency for a uniform draw `u` in [0, 1): median at 0.5, p99 at 0.99.
    public func milliseconds(at u: Double) -> Double {
        guard p50 > 0 else { return 0 }
        let tail = max(p99, p50)
        if u <= 0.5 { return p50 * (0.5 + u) }
        if u <= 0.99 { return p50 + (tail - p50) * (u - 0.5) / 0.49 }
        return tail * (1 + (u - 0.99) * 50)
    }
}

/// A named set of faults (`--faults none|default|chaos` or any profile in the config).
public struct FaultProfile: Codable, Hashable, Sendable {
    public var name: String
    public var steps: [SagaStep: StepFaults]

    public init(name: String, steps: [SagaStep: StepFaults] = [:]) {
        self.name = name
        self.steps = steps
    }

    public subscript(step: SagaStep) -> StepFaults { steps[step] ?? StepFaults() }

    public static let none = FaultProfile(name: "none")
}

/// A deterministic draw in [0, 1) from a key: the same order, step and attempt always draw
/// the same number (FNV-1a then a splitmix finaliser).
public enum FaultDraw {
    public static func uniform(_ parts: String...) -> Double {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for part in parts {
            for byte in part.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
            hash ^= 0xFF
            hash = hash &* 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 30
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash = hash &* 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return Double(hash >> 11) / Double(1 << 53)
    }
}
