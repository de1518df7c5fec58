import Testing
@testable import SagaDomain

@Suite struct OrderValidatorTests {
    static let valid = """
        {"order_id":"o-1001","customer_id":"c-7","customer_tier":"standard","currency":"USD",
         "items":[{"sku":"SKU-1","quantity":2,"unit_price":19.99}],
         "payment":{"method":"card","token":"tok_visa"},
         "shipping_address":{"name":"A. Buyer","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"},
         "email":"buyer@example.com"}
        """

    func validate(_ text: String) -> Result<Order, OrderRejection> {
        OrderValidator().validate(Array(text.utf8))
    }

    func replacing(_ old: String, _ new: String) -> String {
        precondition(Self.valid.contains(old), "fixture lacks \(old)")
        return Self.valid.replacingOccurrences(of: old, with: new)
    }

    @Test func theDesignDocumentsExampleIsAccepted() throws {
        let order = try validate(Self.valid).get()
        #expect(order.orderID == "o-1001")
        #expect(order.amountCents == 3998)
        #expect(order.totalUnits == 2)
        #expect(order.customerTier == .standard)
    }

    @Test(arguments: [
        ("not json at all", "not_json", nil as String?),
        ("{\"order_id\": \"o-1\",", "not_json", nil),
        ("[1, 2, 3]", "not_an_object", nil),
        ("\"a string\"", "not_an_object", nil),
    ])
    func unparseableOrNonObjectPayloadsAreRejected(payload: String, reason: String, field: String?) {
        guard case .failure(let rejection) = validate(payload) else {
            Issue.record("accepted \(payload)")
            return
        }
        #expect(rejection.reason.rawValue == reason)
    }

    @Test(arguments: [
        ("\"customer_id\":\"c-7\",", "", "missing_field", "customer_id"),
        ("\"email\":\"buyer@example.com\"", "\"email\":null", "missing_field", "email"),
        ("\"city\":\"Springfield\",", "", "missing_field", "shipping_address.city"),
        ("\"quantity\":2", "\"quantity\":\"2\"", "wrong_type", "items[0].quantity"),
        ("\"quantity\":2", "\"quantity\":2.5", "wrong_type", "items[0].quantity"),
        ("\"unit_price\":19.99", "\"unit_price\":\"19.99\"", "wrong_type", "items[0].unit_price"),
        ("\"order_id\":\"o-1001\"", "\"order_id\":1001", "wrong_type", "order_id"),
        ("\"items\":[{\"sku\":\"SKU-1\",\"quantity\":2,\"unit_price\":19.99}]", "\"items\":{}", "wrong_type", "items"),
        ("\"items\":[{\"sku\":\"SKU-1\",\"quantity\":2,\"unit_price\":19.99}]", "\"items\":[]", "empty_items", "items"),
        ("\"quantity\":2", "\"quantity\":0", "non_positive_quantity", "items[0].quantity"),
        ("\"quantity\":2", "\"quantity\":-3", "non_positive_quantity", "items[0].quantity"),
        ("\"unit_price\":19.99", "\"unit_price\":0", "non_positive_price", "items[0].unit_price"),
        ("\"unit_price\":19.99", "\"unit_price\":-1.5", "non_positive_price", "items[0].unit_price"),
        ("\"currency\":\"USD\"", "\"currency\":\"XYZ\"", "unknown_currency", "currency"),
        ("\"email\":\"buyer@example.com\"", "\"email\":\"not-an-email\"", "bad_email", "email"),
        ("\"email\":\"buyer@example.com\"", "\"email\":\"a b@example.com\"", "bad_email", "email"),
        ("\"customer_tier\":\"standard\"", "\"customer_tier\":\"platinum\"", "unknown_tier", "customer_tier"),
        ("\"customer_tier\":\"standard\"", "\"customer_tier\":\"standard\",\"amount\":99.5", "amount_mismatch", "amount"),
        ("\"country\":\"US\"", "\"country\":\"usa\"", "invalid_field", "shipping_address.country"),
        ("\"order_id\":\"o-1001\"", "\"order_id\":\"\"", "invalid_field", "order_id"),
        ("\"order_id\":\"o-1001\"", "\"order_id\":\" \\t \"", "invalid_field", "order_id"),
        ("\"customer_id\":\"c-7\"", "\"customer_id\":\"\\u00a0 \\u3000\"", "invalid_field", "customer_id"),
        ("\"city\":\"Springfield\"", "\"city\":\"   \"", "invalid_field", "shipping_address.city"),
    ])
    func everyMalformationIsRejectedWithItsReasonAndField(old: String, new: String, reason: String, field: String) {
        guard case .failure(let rejection) = validate(replacing(old, new)) else {
            Issue.record("accepted an order with \(new)")
            return
        }
        #expect(rejection.reason.rawValue == reason)
        #expect(rejection.field == field)
        #expect(!rejection.message.isEmpty)
    }

    @Test func aMatchingExplicitAmountIsAccepted() throws {
        let order = try validate(replacing("\"customer_tier\":\"standard\"", "\"customer_tier\":\"standard\",\"amount\":39.98")).get()
        #expect(order.amount == 39.98)
    }

    @Test func anOversizedPayloadIsRejectedBeforeParsing() {
        let huge = "{\"pad\":\"" + String(repeating: "x", count: 70_000) + "\"}"
        guard case .failure(let rejection) = validate(huge) else {
            Issue.record("accepted an oversized payload")
            return
        }
        #expect(rejection.reason == .payloadTooLarge)
    }

    @Test func deeplyNestedJSONIsRejectedNotACrash() {
        let nested = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        guard case .failure(let rejection) = OrderValidator(maxPayloadBytes: 1 << 20).validate(Array(nested.utf8)) else {
            Issue.record("accepted deep nesting")
            return
        }
        #expect(rejection.reason == .notJSON)
    }

    @Test func randomBytesNeverCrashTheValidator() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<200, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if case .success = OrderValidator().validate(bytes) { Issue.record("random bytes accepted as an order") }
        }
        // Mutations of a valid order: each either validates or is rejected with a reason.
        let base = Array(Self.valid.utf8)
        for _ in 0..<2000 {
            var mutated = base
            for _ in 0..<Int.random(in: 1...4) { mutated[Int.random(in: 0..<mutated.count)] = UInt8.random(in: 0...255) }
            if case .failure(let rejection) = OrderValidator().validate(mutated) { #expect(!rejection.message.isEmpty) }
        }
    }

    @Test func canonicalJSONIsTheSameForTheSameOrderWhateverTheSpacingAndKeyOrder() throws {
        let a = try validate(Self.valid).get()
        let reordered = """
            {"email":"buyer@example.com","order_id":"o-1001","currency":"USD","customer_id":"c-7",
            "shipping_address":{"country":"US","postal_code":"12345","city":"Springfield","line1":"1 Main St","name":"A. Buyer"},
            "payment":{"token":"tok_visa","method":"card"},"items":[{"unit_price":19.99,"quantity":2,"sku":"SKU-1"}],"customer_tier":"standard"}
            """
        let b = try validate(reordered).get()
        #expect(a.canonicalJSON() == b.canonicalJSON())
        let roundTrip = try Order.decode(a.canonicalJSON())
        #expect(roundTrip == a)
    }

    @Test func stringsWithEscapesAndUnicodeSurviveARoundTrip() throws {
        let order = try validate(replacing("\"name\":\"A. Buyer\"", "\"name\":\"Zoë \\\"Q\\\" \\u00e9\\ud83d\\ude00\\n\"")).get()
        #expect(order.shippingAddress.name == "Zoë \"Q\" é😀\n")
        #expect(try Order.decode(order.canonicalJSON()).shippingAddress.name == order.shippingAddress.name)
    }
}
