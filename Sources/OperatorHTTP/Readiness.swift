import Synchronization

/// What `/readyz` answers from: named conditions that services set as they come up (the
/// consumers of each worker assigned, the stores open) and checks run at request time
/// (the broker reachable).
public final class Readiness: Sendable {
    private let conditions = Mutex<[String: Bool]>([:])
    private let checks = Mutex<[(String, @Sendable () async -> Bool)]>([])

    public init() {}

    /// A condition that starts unmet, for a service to meet later.
    public func expect(_ name: String) { conditions.withLock { if $0[name] == nil { $0[name] = false } } }
    public func set(_ name: String, _ ready: Bool) { conditions.withLock { $0[name] = ready } }
    public func addCheck(_ name: String, _ check: @escaping @Sendable () async -> Bool) { checks.withLock { $0.append((name, check)) } }

    /// Every condition and check by name, and whether all hold.
    public func evaluate() async -> (ready: Bool, conditions: [String: Bool]) {
        var result = conditions.withLock { $0 }
        for (name, check) in checks.withLock({ $0 }) { result[name] = await check() }
        return (result.values.allSatisfy { $0 }, result)
    }
}
