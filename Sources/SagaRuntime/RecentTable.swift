/// A map that remembers what was used recently and forgets the rest, in bounded memory:
/// two generations, the current one taking writes, and a lookup that finds a key only in the
/// older one moves it forward. When the current generation holds `capacity` keys it becomes
/// the older one and the oldest is dropped, so at most `2 × capacity` keys are kept, and any
/// key used within the last `capacity` distinct keys is still there. Not synchronized: the
/// owner holds it under its own lock. A plain struct, tested without I/O.
public struct RecentTable<Key: Hashable, Value> {
    public let capacity: Int
    private var current: [Key: Value] = [:]
    private var previous: [Key: Value] = [:]

    public init(capacity: Int) {
        precondition(capacity > 0, "a RecentTable needs room for at least one key")
        self.capacity = capacity
    }

    /// How many keys are held (both generations).
    public var count: Int { current.count + previous.count }

    /// The value for `key`, moved into the current generation when it was in the older one.
    public mutating func value(_ key: Key) -> Value? {
        if let value = current[key] { return value }
        guard let value = previous.removeValue(forKey: key) else { return nil }
        store(key, value)
        return value
    }

    public mutating func set(_ key: Key, _ value: Value) {
        if let index = current.index(forKey: key) {
            current.values[index] = value
            return
        }
        previous.removeValue(forKey: key)
        store(key, value)
    }

    /// Changes the value for `key` in place, starting from `initial` when the key is not
    /// held, and returns the new value (a counter: `update(key, default: 0) { $0 += 1 }`).
    public mutating func update(_ key: Key, default initial: @autoclosure () -> Value, _ change: (inout Value) -> Void) -> Value {
        if let index = current.index(forKey: key) {
            change(&current.values[index])
            return current.values[index]
        }
        var value = previous.removeValue(forKey: key) ?? initial()
        change(&value)
        store(key, value)
        return value
    }

    private mutating func store(_ key: Key, _ value: Value) {
        if current.count >= capacity {
            previous = current
            current = Dictionary(minimumCapacity: capacity)
        }
        current[key] = value
    }
}
