/// Substring search on UTF-8 bytes. Foundation's `String.contains(_:)` / `range(of:)` bridge
/// to NSString on Linux and cost ~3 % of a saga run (every charge, shipment and validation
/// looks for test tokens and markers); these short needles need nothing clever.
extension StringProtocol {
    /// The byte offsets of the first occurrence of `needle`, if any.
    public func utf8Range(of needle: some StringProtocol) -> Range<Int>? {
        let haystack = Array(utf8)
        let pattern = Array(needle.utf8)
        guard !pattern.isEmpty else { return 0..<0 }
        guard haystack.count >= pattern.count else { return nil }
        let first = pattern[0]
        var i = 0
        let last = haystack.count - pattern.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < pattern.count && haystack[i + j] == pattern[j] { j += 1 }
                if j == pattern.count { return i..<(i + pattern.count) }
            }
            i += 1
        }
        return nil
    }

    /// Whether `needle` occurs in the text (byte-wise, like Foundation's literal search).
    public func containsText(_ needle: some StringProtocol) -> Bool {
        utf8Range(of: needle) != nil
    }
}
