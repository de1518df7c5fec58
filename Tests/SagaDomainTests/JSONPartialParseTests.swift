import Testing
@testable import SagaDomain

/// `parse(_:keepingMembers:)` skips what the bulk loader does not need; it must accept and
/// refuse exactly what the full parser does, with the same error at the same offset, and
/// keep the named members as the full parse reads them. Checked on mutations of an order.
@Suite struct JSONPartialParseTests {
    static let keys: Set<String> = ["order_id", "customer_tier", "amount", "items"]
    static let order = Array(#"""
        {"order_id":"o-1","customer_id":"c-7","customer_tier":"vip","currency":"USD","items":[{"sku":"SKU-1","quantity":2,"unit_price":12.5}],"payment":{"method":"card","token":"tok_visa"},"shipping_address":{"name":"Zoë \"Z\" Ünal","line1":"1 Main St\n","city":"Köln","postal_code":"50667","country":"DE"},"email":"a@example.com","note":[true,false,null,-1.5e3,{"deep":[[[]]]}]}
        """#.utf8)

    func agree(_ bytes: [UInt8], _ label: @autoclosure () -> String) {
        let full = Result { () throws(JSONValue.ParseError) in try JSONValue.parse(bytes) }
        let partial = Result { () throws(JSONValue.ParseError) in try JSONValue.parse(bytes, keepingMembers: Self.keys) }
        switch (full, partial) {
        case (.success(let whole), .success(let some)):
            #expect(some == whole.keepingMembers(Self.keys), "\(label())")
        case (.failure(let a), .failure(let b)):
            #expect(a.offset == b.offset && a.message == b.message, "\(label()): \(a.message)@\(a.offset) vs \(b.message)@\(b.offset)")
        default:
            Issue.record("\(label()): full \(full), partial \(partial)")
        }
    }

    @Test func theOrderItselfKeepsItsIdTierAndItems() throws {
        let kept = try JSONValue.parse(Self.order, keepingMembers: Self.keys)
        #expect(kept["order_id"] == .string("o-1"))
        #expect(kept["customer_tier"] == .string("vip"))
        #expect(kept["items"] == (try JSONValue.parse(Self.order))["items"])
        #expect(kept["email"] == nil)
        agree(Self.order, "the order")
    }

    @Test func mutatedOrdersParseAlikeOrFailAlike() {
        var generator = SystemRandomNumberGenerator()
        let interesting: [UInt8] = Array(#"{}[]",:\ u0aA-+.eE19tfn"#.utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xA9, 0xED, 0xF0, 0xFF, 0x20, 0x0A]
        for round in 0..<20_000 {
            var bytes = Self.order
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                guard !bytes.isEmpty else { break }
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: bytes[at] = interesting.randomElement(using: &generator)!
                case 1: bytes.insert(interesting.randomElement(using: &generator)!, at: at)
                case 2: bytes.remove(at: at)
                default: bytes = Array(bytes[..<at])
                }
            }
            agree(bytes, "round \(round): \(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test func depthLimitsAndOtherTopLevelValuesAgree() {
        for text in ["[1,2]", "\"x\"", "12", "null", "{", "{}", "{\"a\":[[[[1]]]]}", " {\"order_id\":\"o\"} ", "{\"order_id\":\"o\",\"order_id\":\"p\"}"] {
            for depth in [0, 1, 2, 3, 64] {
                let bytes = Array(text.utf8)
                let full = Result { () throws(JSONValue.ParseError) in try JSONValue.parse(bytes, maxDepth: depth) }
                let partial = Result { () throws(JSONValue.ParseError) in try JSONValue.parse(bytes, keepingMembers: Self.keys, maxDepth: depth) }
                switch (full, partial) {
                case (.success(let whole), .success(let some)): #expect(some == whole.keepingMembers(Self.keys), "\(text) at depth \(depth)")
                case (.failure(let a), .failure(let b)): #expect(a.offset == b.offset && a.message == b.message, "\(text) at depth \(depth)")
                default: Issue.record("\(text) at depth \(depth): full \(full), partial \(partial)")
                }
            }
        }
    }
}
