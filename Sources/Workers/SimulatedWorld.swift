import SagaDomain
import SagaRuntime
import Synchronization

/// The outside world the steps talk to (gateway, warehouse system, carrier, mail), simulated
/// with a fault profile. Draws are deterministic per idempotency key and call number, so a
/// run fails the same way every time; call numbers are per process, like a real service that
/// does not remember failed calls, and kept for the keys called most recently (a key not
/// called within the last `rememberedKeys` distinct keys starts again at 1), so memory does
/// not grow with the orders a long run has seen.
public final class SimulatedWorld: Sendable {
    public let profile: FaultProfile
    private let calls: Mutex<RecentTable<String, Int>>
    private let latencyTimer = LatencyTimer()

    public init(profile: FaultProfile, rememberedKeys: Int = 100_000) {
        self.profile = profile
        self.calls = Mutex(RecentTable(capacity: rememberedKeys))
    }

    /// Counts a call for `key` and returns its number (1-based).
    public func callNumber(_ key: String) -> Int {
        calls.withLock { $0.update(key, default: 0) { $0 += 1 } }
    }

    /// What the profile makes of this call.
    public enum Fault: Sendable, Equatable {
        case none
        case transient
        case hang
        case permanent
    }

    public func fault(_ step: SagaStep, key: String, call: Int) -> Fault {
        let faults = profile[step]
        let u = FaultDraw.uniform(key, "fault", String(call))
        if u < faults.hang { return .hang }
        if u < faults.hang + faults.permanent { return .permanent }
        if u < faults.hang + faults.permanent + faults.transient { return .transient }
        return .none
    }

    public func undoFails(_ step: SagaStep, key: String, call: Int) -> Bool {
        FaultDraw.uniform(key, "undo", String(call)) < profile[step].undoFailure
    }

    /// Simulated service latency for this call (cancellable), ended by the world's one
    /// `LatencyTimer`.
    public func latency(_ step: SagaStep, key: String, call: Int) async throws {
        let ms = profile[step].latencyMilliseconds.milliseconds(at: FaultDraw.uniform(key, "latency", String(call)))
        if ms > 0 { try await latencyTimer.wait(.microseconds(Int64(ms * 1000))) }
    }

    /// Hangs until cancelled (by the step's timeout or missed heartbeats).
    public static func hang() async throws -> Never {
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

/// Test tokens and addresses that make the simulated world misbehave on purpose, as payment
/// gateways' test cards do. `tok_transient_2` fails twice then works; `tok_refund_fail_3`
/// fails three refunds then works; `always` fails every time.
public enum ScriptedFault {
    /// The number in `prefix_N` (or `Int.max` for `prefix_always`), if `text` has that form.
    public static func count(in text: String, prefix: String) -> Int? {
        guard let range = text.utf8Range(of: prefix) else { return nil }
        let rest = text.utf8.dropFirst(range.upperBound).prefix { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
        }
        let word = String(decoding: rest, as: UTF8.self)
        if word == "always" { return Int.max }
        return Int(word)
    }
}
