import SagaDomain
import Testing
@testable import Workers

/// The simulated world's call numbers: a retried call draws afresh even when the world has
/// turned over its table of recent keys meanwhile, and memory stays bounded.
@Suite struct SimulatedWorldTests {
    /// Half of all payment calls fail transiently; 4 recent keys, so 1 remembered failed key.
    let world = SimulatedWorld(profile: FaultProfile(name: "half", steps: [.payment: StepFaults(transient: 0.5)]), rememberedKeys: 4)

    /// A key whose first call fails and whose second would not.
    func keyFailingOnlyAtFirstCall() -> String {
        for i in 0..<1_000 {
            let key = "order-\(i)/payment"
            if FaultDraw.uniform(key, "fault", "1") < 0.5, FaultDraw.uniform(key, "fault", "2") >= 0.5 { return key }
        }
        Issue.record("no key fails at call 1 and not at call 2 in 1,000")
        return ""
    }

    func callOthers(_ count: Int, from start: Int = 0) {
        for i in start..<(start + count) { _ = world.callNumber("other-\(i)") }
    }

    @Test func aFailedKeyForgottenDuringItsBackoffDrawsItsNextCallAfresh() {
        let key = keyFailingOnlyAtFirstCall()
        #expect(world.callNumber(key) == 1)
        #expect(world.fault(.payment, key: key, call: 1) == .transient)
        // Ten other keys called meanwhile: more than the recent table holds (two generations of 4).
        callOthers(10)
        let retry = world.callNumber(key)
        #expect(retry == 2, "the retry must not draw call 1's fault again")
        #expect(world.fault(.payment, key: key, call: retry) == .none)
    }

    @Test func aFailedUndoIsRememberedLikeAFailedCall() {
        let undoing = SimulatedWorld(profile: FaultProfile(name: "undo", steps: [.payment: StepFaults(undoFailure: 1)]), rememberedKeys: 4)
        #expect(undoing.callNumber("refund") == 1)
        #expect(undoing.undoFails(.payment, key: "refund", call: 1))
        for i in 0..<10 { _ = undoing.callNumber("other-\(i)") }
        #expect(undoing.callNumber("refund") == 2)
    }

    @Test func aKeyThatNeverFailedStartsAgainOnceForgotten() {
        #expect(world.callNumber("quiet") == 1)
        #expect(world.callNumber("quiet") == 2)
        callOthers(10)
        #expect(world.callNumber("quiet") == 1)
    }

    @Test func failedKeysAreBoundedToo() {
        // Every call fails; three keys fail at call 1, and the failed table holds two
        // generations of one key.
        let failing = SimulatedWorld(profile: FaultProfile(name: "down", steps: [.payment: StepFaults(transient: 1)]), rememberedKeys: 4)
        for key in ["a", "b", "c"] {
            #expect(failing.callNumber(key) == 1)
            #expect(failing.fault(.payment, key: key, call: 1) == .transient)
        }
        for i in 0..<10 { _ = failing.callNumber("other-\(i)") }
        #expect(failing.callNumber("a") == 1, "the oldest failed key is forgotten")
        #expect(failing.callNumber("c") == 2)
    }
}
