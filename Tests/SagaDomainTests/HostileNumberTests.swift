import Testing
@testable import SagaDomain

/// Numbers from outside are hostile: every one of these crashed or could crash the process
/// before (a 31-digit quantity overflowed the parser's integer fast path).
@Suite struct HostileNumberTests {
    func order(quantity: String = "2", unitPrice: String = "19.99", amount: String? = nil) -> [UInt8] {
        let amountField = amount.map { "\"amount\":\($0)," } ?? ""
        return Array("""
            {\(amountField)"order_id":"o-n","customer_id":"c-7","currency":"USD",
             "items":[{"sku":"SKU-1","quantity":\(quantity),"unit_price":\(unitPrice)}],
             "payment":{"method":"card","token":"tok_visa"},
             "shipping_address":{"name":"A","line1":"1 Main St","city":"S","postal_code":"1","country":"US"},
             "email":"b@example.com"}
            """.utf8)
    }

    @Test(arguments: [
        "1234567890123456789012345678901", "-1234567890123456789012345678901", "9223372036854775808", "18446744073709551616",
        "1e400", "-1e400", "1e308", "123456789012345.5", "1000000000000000", "0.0000000000000000000001", "1E+2", "-0",
    ])
    func quantitiesOutOfEveryRangeAreRejectedOrAccepted(quantity: String) {
        // Never a trap: either a rejection naming the field, or (1E+2 is 100) an order.
        switch OrderValidator().validate(order(quantity: quantity)) {
        case .success(let order): #expect(order.items[0].quantity == 100)
        case .failure(let rejection): #expect(rejection.field?.hasPrefix("items[0].quantity") == true || rejection.reason == .notJSON)
        }
    }

    @Test(arguments: ["1e300", "-1e300", "9223372036854775807", "1e-300", "0"])
    func pricesOutOfEveryRangeAreRejected(price: String) {
        guard case .failure(let rejection) = OrderValidator().validate(order(unitPrice: price)) else {
            Issue.record("accepted a unit_price of \(price)")
            return
        }
        #expect(rejection.field == "items[0].unit_price")
    }

    @Test(arguments: ["1e300", "-1e300", "1e19", "92233720368547758.07", "0"])
    func amountsOutOfEveryRangeAreAMismatch(amount: String) {
        guard case .failure(let rejection) = OrderValidator().validate(order(amount: amount)) else {
            Issue.record("accepted an amount of \(amount)")
            return
        }
        #expect(rejection.reason == .amountMismatch)
    }

    @Test func longIntegersParseAsTheirValue() throws {
        #expect(try JSONValue.parse(Array("1234567890123456789012345678901".utf8)) == .number(1.2345678901234568e30))
        #expect(try JSONValue.parse(Array("123456789012345".utf8)) == .number(123_456_789_012_345))
        #expect(try JSONValue.parse(Array("-1234567890123456".utf8)) == .number(-1_234_567_890_123_456))
    }

    /// Steps decode requests without validation (anyone with access to a topic can write one):
    /// totals saturate instead of trapping.
    @Test func unvalidatedOrdersHaveSaturatingTotals() throws {
        let huge = try Order(json: JSONValue.parse(order(quantity: "999999999999999", unitPrice: "1e300")))
        #expect(huge.amountCents == Int64.max)
        let many = Order(
            orderID: "o", customerID: "c", items: Array(repeating: OrderItem(sku: "S", quantity: Int.max / 2, unitPrice: 1), count: 3),
            payment: PaymentDetails(token: "t"), shippingAddress: ShippingAddress(name: "n", line1: "l", city: "c", postalCode: "p", country: "US"),
            email: "e@x.y")
        #expect(many.totalUnits == Int.max)
        #expect(many.amountCents == Int64.max)
    }
}
