import Testing
import Workers

/// The test-token grammar: `prefix_N` fails N times, `prefix_always` every time.
@Suite struct ScriptedFaultTests {
    @Test func readsTheCountAfterThePrefix() {
        #expect(ScriptedFault.count(in: "tok_transient_2", prefix: "tok_transient_") == 2)
        #expect(ScriptedFault.count(in: "card:tok_refund_fail_13/x", prefix: "tok_refund_fail_") == 13)
        #expect(ScriptedFault.count(in: "tok_refund_fail_always", prefix: "tok_refund_fail_") == Int.max)
        #expect(ScriptedFault.count(in: "tok_visa", prefix: "tok_transient_") == nil)
        #expect(ScriptedFault.count(in: "tok_transient_", prefix: "tok_transient_") == nil)
    }
}
