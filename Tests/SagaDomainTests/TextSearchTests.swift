import Testing
import SagaDomain

/// The byte-wise substring search the hot paths use instead of Foundation's.
@Suite struct TextSearchTests {
    @Test func findsWhatFoundationWouldFind() {
        #expect("tok_transient_2".utf8Range(of: "tok_transient_") == 0..<14)
        #expect("x-tok_hang-y".containsText("tok_hang"))
        #expect(!"tok_han".containsText("tok_hang"))
        #expect("a..b".containsText(".."))
        #expect(!"a.b".containsText(".."))
        #expect("".utf8Range(of: "x") == nil)
        #expect("abc".utf8Range(of: "") == 0..<0)
        #expect("ääSTALLöö".containsText("STALL"), "multi-byte text around an ASCII needle")
        #expect("aaab".utf8Range(of: "aab") == 1..<4, "a partial match does not skip the real one")
    }
}
