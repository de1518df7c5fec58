import SagaDomain
import SagaRuntime
import Synchronization

/// The outside world the steps talk to (gateway, warehouse system, carrier, mail), simulated
/// with a fault profile. Draws are deterministic per idempotency key and call number, so a
/// run fails the same way every time; call numbers are per process, like a real service that
/// does not remember failed calls, and kept for the keys called most recently (a key not
/// called within the last `rememberedKeys` distinct keys starts again at 1), so memory does
/// not grow with the orders a long run has seen.
///
/// A key whose call the profile failed is also kept in a second, smaller table, because it
/// is the key that will be called again, after a retry's backoff. Without it, a key forgotten
/// during its backoff started again at call 1 and drew call 1's fault again: at 8,000
/// orders/s the first table turns over in seconds, so a payment retried after 4 and 8 s failed
/// again at every attempt and was compensated, where the profile's independent 2 % per call
/// makes that about one order in 6 million.
public final class SimulatedWorld: Sendable {
    public let profile: FaultProfile
    private let calls: Mutex<CallCounts>
    private let latencyTimer = LatencyTimer()

    private struct CallCounts {
        /// Every key's count, for the keys called most recently.
        var recent: RecentTable<String, Int>
        /// The number of the last failed call of each key the profile failed.
        var failed: RecentTable<String, Int>
    }

    public init(profile: FaultProfile, rememberedKeys: Int = 100_000) {
        self.profile = profile
        self.calls = Mutex(CallCounts(recent: RecentTable(capacity: rememberedKeys), failed: RecentTable(capacity: max(1, rememberedKeys / 4))))
    }

    /// Counts a call for `key` and returns its number (1-based): never a number this key's
    /// failed calls already drew.
    public func callNumber(_ key: String) -> Int {
        calls.withLock { counts in
            let lastFailed = counts.failed.value(key) ?? 0
            return counts.recent.update(key, default: lastFailed) { $0 = max($0, lastFailed) + 1 }
        }
    }

    private func rememberFailed(_ key: String, call: Int) {
        calls.withLock { $0.failed.set(key, call) }
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
        let fault: Fault
        if u < faults.hang { fault = .hang }
        else if u < faults.hang + faults.permanent { fault = .permanent }
        else if u < faults.hang + faults.permanent + faults.transient { fault = .transient }
        else { return .none }
        rememberFailed(key, call: call)
        return fault
    }

    public func undoFails(_ step: SagaStep, key: String, call: Int) -> Bool {
        guard FaultDraw.uniform(key, "undo", String(call)) < profile[step].undoFailure else { return false }
        rememberFailed(key, call: call)
        return true
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
