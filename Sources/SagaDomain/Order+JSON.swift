extension Order {
    /// Maps a parsed document to an order; every problem is an `OrderRejection` naming the field.
    public init(json: JSONValue) throws(OrderRejection) {
        guard case .object = json else {
            throw OrderRejection(orderID: nil, reason: .notAnObject, message: "the payload must be a JSON object, not \(json.typeName == "array" ? "an" : "a") \(json.typeName)")
        }
        var reader = FieldReader(orderID: nil)
        let orderID = try reader.string(json, "order_id")
        reader.orderID = orderID
        let customerID = try reader.string(json, "customer_id")
        var tier = CustomerTier.standard
        if let value = json["customer_tier"], value != .null {
            guard case .string(let text) = value else { throw reader.wrongType("customer_tier", "string", value) }
            guard let parsed = CustomerTier(rawValue: text) else {
                throw OrderRejection(orderID: orderID, reason: .unknownTier, field: "customer_tier", message: "customer_tier must be \"standard\" or \"vip\", not \"\(text)\"")
            }
            tier = parsed
        }
        let currency = try reader.string(json, "currency")
        guard let itemsValue = json["items"], itemsValue != .null else { throw reader.missing("items") }
        guard case .array(let elements) = itemsValue else { throw reader.wrongType("items", "array", itemsValue) }
        var items: [OrderItem] = []
        items.reserveCapacity(elements.count)
        for (i, element) in elements.enumerated() {
            let path = "items[\(i)]"
            guard case .object = element else { throw reader.wrongType(path, "object", element) }
            items.append(OrderItem(
                sku: try reader.string(element, "sku", in: path),
                quantity: try reader.integer(element, "quantity", in: path),
                unitPrice: try reader.number(element, "unit_price", in: path)))
        }
        let paymentValue = try reader.object(json, "payment")
        let payment = PaymentDetails(method: try reader.string(paymentValue, "method", in: "payment"), token: try reader.string(paymentValue, "token", in: "payment"))
        let addressValue = try reader.object(json, "shipping_address")
        let p = "shipping_address"
        let address = ShippingAddress(
            name: try reader.string(addressValue, "name", in: p), line1: try reader.string(addressValue, "line1", in: p),
            city: try reader.string(addressValue, "city", in: p), postalCode: try reader.string(addressValue, "postal_code", in: p),
            country: try reader.string(addressValue, "country", in: p))
        let email = try reader.string(json, "email")
        var amount: Double?
        if let value = json["amount"], value != .null {
            guard case .number(let n) = value else { throw reader.wrongType("amount", "number", value) }
            amount = n
        }
        self.init(orderID: orderID, customerID: customerID, customerTier: tier, currency: currency, items: items, payment: payment, shippingAddress: address, email: email, amount: amount)
    }

    /// Parses an order the saga itself wrote (any problem is reported, not classified).
    public static func decode(_ bytes: [UInt8]) throws -> Order {
        try Order(json: try JSONValue.parse(bytes))
    }

    /// The order as canonical JSON: keys sorted, no whitespace. Two submissions of the same
    /// order are the same bytes, whatever spacing or key order the user sent.
    public func canonicalJSON() -> [UInt8] {
        var w = JSONWriter(capacity: 256 + items.count * 64)
        w.raw("{")
        if let amount {
            w.raw("\"amount\":")
            w.number(amount)
            w.raw(",")
        }
        w.raw("\"currency\":"); w.string(currency)
        w.raw(",\"customer_id\":"); w.string(customerID)
        w.raw(",\"customer_tier\":"); w.string(customerTier.rawValue)
        w.raw(",\"email\":"); w.string(email)
        w.raw(",\"items\":[")
        for (i, item) in items.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"quantity\":"); w.number(item.quantity)
            w.raw(",\"sku\":"); w.string(item.sku)
            w.raw(",\"unit_price\":"); w.number(item.unitPrice)
            w.raw("}")
        }
        w.raw("],\"order_id\":"); w.string(orderID)
        w.raw(",\"payment\":{\"method\":"); w.string(payment.method)
        w.raw(",\"token\":"); w.string(payment.token)
        w.raw("},\"shipping_address\":{\"city\":"); w.string(shippingAddress.city)
        w.raw(",\"country\":"); w.string(shippingAddress.country)
        w.raw(",\"line1\":"); w.string(shippingAddress.line1)
        w.raw(",\"name\":"); w.string(shippingAddress.name)
        w.raw(",\"postal_code\":"); w.string(shippingAddress.postalCode)
        w.raw("}}")
        return w.bytes
    }
}

/// Reads typed fields and says precisely which one is missing or of the wrong type.
private struct FieldReader {
    var orderID: String?

    func path(_ key: String, _ parent: String?) -> String { parent.map { "\($0).\(key)" } ?? key }

    func missing(_ field: String) -> OrderRejection {
        OrderRejection(orderID: orderID, reason: .missingField, field: field, message: "required field \(field) is missing")
    }

    func wrongType(_ field: String, _ expected: String, _ value: JSONValue) -> OrderRejection {
        OrderRejection(orderID: orderID, reason: .wrongType, field: field, message: "field \(field) must be \(expected == "array" || expected == "object" ? "an" : "a") \(expected), not \(value.typeName)")
    }

    func field(_ object: JSONValue, _ key: String, in parent: String?) throws(OrderRejection) -> JSONValue {
        guard let value = object[key], value != .null else { throw missing(path(key, parent)) }
        return value
    }

    func string(_ object: JSONValue, _ key: String, in parent: String? = nil) throws(OrderRejection) -> String {
        let value = try field(object, key, in: parent)
        guard case .string(let text) = value else { throw wrongType(path(key, parent), "string", value) }
        return text
    }

    func number(_ object: JSONValue, _ key: String, in parent: String? = nil) throws(OrderRejection) -> Double {
        let value = try field(object, key, in: parent)
        guard case .number(let n) = value else { throw wrongType(path(key, parent), "number", value) }
        return n
    }

    func integer(_ object: JSONValue, _ key: String, in parent: String? = nil) throws(OrderRejection) -> Int {
        let value = try field(object, key, in: parent)
        guard case .number(let n) = value else { throw wrongType(path(key, parent), "whole number", value) }
        guard n == n.rounded(), abs(n) < 1e15 else {
            throw OrderRejection(orderID: orderID, reason: .wrongType, field: path(key, parent), message: "field \(path(key, parent)) must be a whole number, not \(n)")
        }
        return Int(n)
    }

    func object(_ object: JSONValue, _ key: String) throws(OrderRejection) -> JSONValue {
        let value = try field(object, key, in: nil)
        guard case .object = value else { throw wrongType(key, "object", value) }
        return value
    }
}
