import Synchronization
import Testing

@testable import KafkaWire

/// The listener's admission and request window as plain values, without sockets.
@Suite struct ListenerLimitsTests {
    func limits(total: Int, perAddress: Int) -> ListenerLimits {
        var limits = ListenerLimits()
        limits.maxConnections = total
        limits.maxConnectionsPerAddress = perAddress
        return limits
    }

    @Test func aFloodFromOneAddressLeavesRoomForOthersAndIsLoggedOnce() {
        var admission = ConnectionAdmission(limits: limits(total: 10, perAddress: 3))
        let flood = (0..<50).map { _ in admission.admit("10.0.0.9") }
        #expect(flood.prefix(3).allSatisfy { $0 == .admitted })
        #expect(flood[3] == .refused(.tooManyConnectionsFromAddress, firstForAddress: true))
        #expect(flood.dropFirst(4).allSatisfy { $0 == .refused(.tooManyConnectionsFromAddress, firstForAddress: false) })
        do { let decision = admission.admit("10.0.0.1"); #expect(decision == .admitted) }
        #expect(admission.open == 4)
    }

    @Test func theTotalCapRefusesEveryAddressUntilOneCloses() {
        var admission = ConnectionAdmission(limits: limits(total: 4, perAddress: 3))
        for address in ["a", "a", "b", "c"] {
            let decision = admission.admit(address)
            #expect(decision == .admitted)
        }
        do { let decision = admission.admit("d"); #expect(decision == .refused(.tooManyConnections, firstForAddress: true)) }
        do { let decision = admission.admit("d"); #expect(decision == .refused(.tooManyConnections, firstForAddress: false)) }
        admission.release("a")
        do { let decision = admission.admit("d"); #expect(decision == .admitted) }
        #expect(admission.openByAddress == ["a": 1, "b": 1, "c": 1, "d": 1])
    }

    @Test func releasingAnUnknownAddressChangesNothing() {
        var admission = ConnectionAdmission(limits: limits(total: 4, perAddress: 3))
        do { let decision = admission.admit("a"); #expect(decision == .admitted) }
        admission.release("z")
        admission.release("a")
        admission.release("a")
        #expect(admission.open == 0)
        #expect(admission.openByAddress.isEmpty)
    }

    @Test func refusalMemoryIsBoundedAndForgetsAllAtOnce() {
        var memory = RefusalMemory(capacity: 3)
        do { let first = memory.isFirst(.frameDeadline, from: "a"); #expect(first) }
        do { let first = memory.isFirst(.frameDeadline, from: "a"); #expect(!first) }
        do { let first = memory.isFirst(.idle, from: "a"); #expect(first) }
        do { let first = memory.isFirst(.frameDeadline, from: "b"); #expect(first) }
        // Full: forgotten, so "a" is logged once more rather than memory growing.
        do { let first = memory.isFirst(.frameDeadline, from: "a"); #expect(first) }
    }

    @Test func unusableLimitsAreNamed() {
        var limits = ListenerLimits()
        #expect(limits.problem() == nil)
        limits.maxFrameBytes = 100
        #expect(limits.problem()?.contains("request bytes") == true)
        limits = ListenerLimits()
        limits.frameDeadline = .zero
        #expect(limits.problem()?.contains("deadline") == true)
        limits = ListenerLimits()
        limits.maxInFlightRequests = 0
        #expect(limits.problem()?.contains("in-flight") == true)
    }

    @Test func frameErrorsMapToRefusalReasons() {
        #expect(RefusalReason(closing: WireError(.tooLarge, "")) == .frameTooLarge)
        #expect(RefusalReason(closing: WireError(.deadline, "")) == .frameDeadline)
        #expect(RefusalReason(closing: WireError(.idle, "")) == .idle)
        #expect(RefusalReason(closing: WireError(.truncated, "")) == .malformedRequest)
    }

    @Test func theRequestWindowHoldsTheReaderAtItsCapacity() async {
        let window = RequestWindow(capacity: 2)
        #expect(await window.acquire())
        #expect(await window.acquire())
        let passed = Flag()
        let third = Task {
            let taken = await window.acquire()
            passed.set()
            return taken
        }
        try? await Task.sleep(for: .milliseconds(100))
        #expect(!passed.isSet, "a third request was read with two unanswered and a capacity of 2")
        window.release()
        #expect(await third.value)
        // Full again; closing frees the waiting reader with false, and later ones at once.
        let fourth = Task { await window.acquire() }
        try? await Task.sleep(for: .milliseconds(50))
        window.close()
        #expect(await fourth.value == false)
        #expect(await window.acquire() == false)
    }
}

final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
