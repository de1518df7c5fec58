import Testing
@testable import SagaRuntime

@Suite struct RecentTableTests {
    @Test func keepsRecentKeysAndStaysBounded() {
        for last in [99, 150, 199, 5_000, 10_037] {
            var table = RecentTable<Int, Int>(capacity: 100)
            for key in 0...last {
                table.set(key, key * 2)
                #expect(table.count <= 200)
            }
            // Every key set within the last `capacity` distinct keys is still there; none
            // older than two generations is.
            for key in max(0, last - 99)...last { #expect(table.value(key) == key * 2, "key \(key) of 0...\(last)") }
            if last >= 200 { #expect(table.value(last - 200) == nil) }
        }
    }

    @Test func aKeyReadAgainIsKeptAcrossGenerations() {
        var table = RecentTable<String, Int>(capacity: 10)
        table.set("hot", 1)
        for key in 0..<1_000 {
            table.set("k\(key)", key)
            if key % 5 == 0 { #expect(table.value("hot") == 1) }
        }
        #expect(table.value("hot") == 1)
        #expect(table.value("k0") == nil)
    }

    @Test func setOverwritesInEitherGeneration() {
        var table = RecentTable<String, Int>(capacity: 2)
        table.set("a", 1)
        table.set("b", 2)
        table.set("c", 3)  // a and b move to the older generation
        table.set("a", 10)
        #expect(table.value("a") == 10)
        #expect(table.value("b") == 2)
        #expect(table.count <= 4)
    }

    /// A counter kept with `update`: counts in either generation carry on, a key forgotten
    /// (older than two generations) starts again from the default, and the table stays bounded.
    @Test func updateCountsInEitherGenerationAndStartsAgainWhenForgotten() {
        var table = RecentTable<String, Int>(capacity: 3)
        #expect(table.update("a", default: 0) { $0 += 1 } == 1)
        #expect(table.update("a", default: 0) { $0 += 1 } == 2)
        for key in ["b", "c", "d"] { _ = table.update(key, default: 0) { $0 += 1 } }  // a is in the older generation
        #expect(table.update("a", default: 0) { $0 += 1 } == 3)
        for key in ["e", "f", "g", "h", "i", "j", "k"] { _ = table.update(key, default: 0) { $0 += 1 } }
        #expect(table.value("a") == nil)
        #expect(table.update("a", default: 0) { $0 += 1 } == 1)
        #expect(table.count <= 6)
    }
}
