import Foundation
import IOThreads
import Synchronization
import Testing

/// The one way blocking calls run: off the cooperative pool, never starved by each other.
@Suite struct BlockingIOTests {
    final class Counters: Sendable {
        let started = Atomic<Int>(0)
        let running = Atomic<Int>(0)
        let overlapped = Atomic<Bool>(false)
        let order = Mutex<[Int]>([])
    }

    /// 40 jobs that each block until all 40 have started, as 40 consumers' long polls in one
    /// process do: with only the eight threads always there, they would wait forever.
    @Test func jobsThatBlockDoNotStarveTheOnesBehindThem() async throws {
        let count = 40
        let counters = Counters()
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<count {
                group.addTask {
                    try await BlockingIO.run {
                        counters.started.add(1, ordering: .relaxed)
                        let deadline = Date().addingTimeInterval(20)
                        while counters.started.load(ordering: .relaxed) < count && Date() < deadline { usleep(1000) }
                        return counters.started.load(ordering: .relaxed) == count
                    }
                }
            }
            for try await sawEveryone in group { #expect(sawEveryone) }
        }
    }

    /// A lane runs its jobs one at a time, in the order given, though they run on the pool.
    @Test func aSerialLaneNeverOverlapsAndKeepsOrder() async throws {
        let lane = BlockingIO.SerialLane()
        let counters = Counters()
        for i in 0..<200 {
            lane.submit {
                if counters.running.add(1, ordering: .relaxed).newValue != 1 { counters.overlapped.store(true, ordering: .relaxed) }
                if i % 20 == 0 { usleep(1000) }
                counters.order.withLock { $0.append(i) }
                counters.running.subtract(1, ordering: .relaxed)
            }
        }
        // Other work on the pool meanwhile must not break the lane's order.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 { group.addTask { try await BlockingIO.run { _ = usleep(500) } } }
            try await group.waitForAll()
        }
        let last = try await lane.run { counters.order.withLock { $0.last } }
        #expect(last == 199)
        #expect(counters.order.withLock { $0 } == Array(0..<200))
        let didOverlap = counters.overlapped.load(ordering: .relaxed)
        #expect(!didOverlap, "jobs of one lane overlapped")
    }

    #if os(Linux)
    /// Background work (the tracker's) runs on threads of its own at nice 10; normal work at
    /// the process's priority.
    @Test func backgroundWorkRunsAtALowerPriority() async throws {
        let ours = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let normal = try await BlockingIO.run { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }
        let background = try await BlockingIO.run(.background) { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }
        #expect(normal == ours)
        #expect(background == max(ours, BlockingIO.Priority.backgroundNiceness))
        // Still normal afterwards: the background threads never lend their priority.
        #expect(try await BlockingIO.run { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) } == ours)
    }
    #endif
}
