/// Substring search on UTF-8 bytes. Foundation's `String.contains(_:)` / `range(of:)` bridge
/// to NSString on Linux and cost ~3 % of a saga run (every charge, shipment and validation
/// looks for test tokens and markers); these short needles need nothing clever.
extension String {
    /// The byte offsets of the first occurrence of `needle`, if any.
    public func utf8Range(of needle: String) -> Range<Int>? {
        var text = self
        var pattern = needle
        return text.withUTF8 { haystack in pattern.withUTF8 { Self.search(haystack, for: $0) } }
    }

    /// Whether `needle` occurs in the text (byte-wise, like Foundation's literal search).
    public func containsText(_ needle: String) -> Bool {
        utf8Range(of: needle) != nil
    }

    private static func search(_ haystack: UnsafeBufferPointer<UInt8>, for pattern: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
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
}
