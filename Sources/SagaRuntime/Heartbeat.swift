import Synchronization

/// Progress reports of one running attempt: a handler beats while it makes progress, and the
/// runtime cancels it when the beats stop for longer than `heartbeat_seconds`.
public final class Heartbeat: Sendable {
    private let lastBeat: Atomic<Int64>

    public init() {
        lastBeat = Atomic(Heartbeat.nowNanoseconds())
    }

    public func beat() {
        lastBeat.store(Heartbeat.nowNanoseconds(), ordering: .relaxed)
    }

    /// Seconds since the last beat (or since the attempt started).
    public var secondsSinceLastBeat: Double {
        Double(Heartbeat.nowNanoseconds() - lastBeat.load(ordering: .relaxed)) / 1e9
    }

    static func nowNanoseconds() -> Int64 {
        let now = ContinuousClock.now - ContinuousClock.zeroReference
        return now.components.seconds * 1_000_000_000 + now.components.attoseconds / 1_000_000_000
    }
}

extension ContinuousClock {
    /// A fixed instant to measure elapsed time from (process start).
    static let zeroReference = ContinuousClock.now
}
