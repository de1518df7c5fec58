import Foundation

/// Why an order was refused: a machine-readable code, the offending field, and a sentence.
/// Published as the value of the `orders.rejected` record.
public struct OrderRejection: Codable, Hashable, Sendable, Error {
    public struct Reason: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let notJSON = Reason(rawValue: "not_json")
        public static let notAnObject = Reason(rawValue: "not_an_object")
        public static let missingField = Reason(rawValue: "missing_field")
        public static let wrongType = Reason(rawValue: "wrong_type")
        public static let emptyItems = Reason(rawValue: "empty_items")
        public static let nonPositiveQuantity = Reason(rawValue: "non_positive_quantity")
        public static let nonPositivePrice = Reason(rawValue: "non_positive_price")
        public static let amountMismatch = Reason(rawValue: "amount_mismatch")
        public static let unknownCurrency = Reason(rawValue: "unknown_currency")
        public static let badEmail = Reason(rawValue: "bad_email")
        public static let payloadTooLarge = Reason(rawValue: "payload_too_large")
        public static let duplicateOrderID = Reason(rawValue: "duplicate_order_id")
        public static let unknownTier = Reason(rawValue: "unknown_tier")
        public static let invalidField = Reason(rawValue: "invalid_field")
        /// The record crashed the dispatcher twice and was set aside on `orders.poison`.
        public static let poison = Reason(rawValue: "poison")
    }

    public var orderID: String?
    public var reason: Reason
    public var field: String?
    public var message: String

    public init(orderID: String?, reason: Reason, field: String? = nil, message: String) {
        self.orderID = orderID
        self.reason = reason
        self.field = field
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case orderID = "order_id"
        case reason, field, message
    }
}

/// Decodes and checks an order from raw bytes. Never throws anything but `OrderRejection`.
public struct OrderValidator: Sendable {
    public static let currencies: Set<String> = [
        "USD", "EUR", "GBP", "JPY", "CAD", "AUD", "CHF", "CNY", "SEK", "NOK", "DKK", "NZD", "SGD", "HKD", "INR", "BRL", "MXN", "ZAR", "PLN", "KRW",
    ]

    public var maxPayloadBytes: Int
    public var maxItems: Int

    public init(maxPayloadBytes: Int = 64 * 1024, maxItems: Int = 500) {
        self.maxPayloadBytes = maxPayloadBytes
        self.maxItems = maxItems
    }

    public func validate(_ bytes: [UInt8]) -> Result<Order, OrderRejection> {
        guard bytes.count <= maxPayloadBytes else {
            return .failure(OrderRejection(orderID: nil, reason: .payloadTooLarge, message: "order payload of \(bytes.count) bytes exceeds the \(maxPayloadBytes)-byte limit"))
        }
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            return .failure(OrderRejection(orderID: nil, reason: .notJSON, message: "the payload is not valid JSON: \(error.message) at byte \(error.offset)"))
        }
        let order: Order
        do {
            order = try Order(json: document)
        } catch {
            return .failure(error)
        }
        if let rejection = check(order) { return .failure(rejection) }
        return .success(order)
    }

    /// Rules beyond types: non-empty identifiers, positive quantities and prices, known
    /// currency, plausible email, consistent amount.
    /// Empty or only spaces and tabs (what `trimmingCharacters(in: .whitespaces)` would empty),
    /// without Foundation's bridging, which cost ~2 % of a saga run: every step validates.
    static func isBlank(_ value: String) -> Bool {
        value.unicodeScalars.allSatisfy { $0 == "\t" || $0.properties.generalCategory == .spaceSeparator }
    }

    public func check(_ order: Order) -> OrderRejection? {
        let id = order.orderID
        func reject(_ reason: OrderRejection.Reason, _ field: String?, _ message: String) -> OrderRejection {
            OrderRejection(orderID: id, reason: reason, field: field, message: message)
        }
        if Self.isBlank(id) || id.utf8.count > 128 {
            return reject(.invalidField, "order_id", "order_id must be 1-128 characters")
        }
        if Self.isBlank(order.customerID) {
            return reject(.invalidField, "customer_id", "customer_id must not be empty")
        }
        if order.items.isEmpty { return reject(.emptyItems, "items", "an order needs at least one item") }
        if order.items.count > maxItems { return reject(.invalidField, "items", "an order holds at most \(maxItems) items") }
        for (i, item) in order.items.enumerated() {
            if item.sku.isEmpty { return reject(.invalidField, "items[\(i)].sku", "items[\(i)].sku must not be empty") }
            if item.quantity <= 0 { return reject(.nonPositiveQuantity, "items[\(i)].quantity", "items[\(i)].quantity must be positive, not \(item.quantity)") }
            if item.quantity > 1_000_000 { return reject(.invalidField, "items[\(i)].quantity", "items[\(i)].quantity is implausibly large") }
            // Positive in cents, not only as a number: 1e-300 would be a free item.
            if !(item.unitPrice > 0) || !item.unitPrice.isFinite || item.unitPrice < 0.005 {
                return reject(.nonPositivePrice, "items[\(i)].unit_price", "items[\(i)].unit_price must be positive, not \(item.unitPrice)")
            }
            if item.unitPrice > 10_000_000 { return reject(.invalidField, "items[\(i)].unit_price", "items[\(i)].unit_price is implausibly large") }
        }
        if !Self.currencies.contains(order.currency) {
            return reject(.unknownCurrency, "currency", "currency \"\(order.currency)\" is not one of \(Self.currencies.sorted().joined(separator: ", "))")
        }
        if !Self.isPlausibleEmail(order.email) { return reject(.badEmail, "email", "email \"\(order.email)\" is not a valid address") }
        if order.payment.token.isEmpty { return reject(.invalidField, "payment.token", "payment.token must not be empty") }
        if order.payment.method.isEmpty { return reject(.invalidField, "payment.method", "payment.method must not be empty") }
        let address = order.shippingAddress
        for (field, value) in [("name", address.name), ("line1", address.line1), ("city", address.city), ("postal_code", address.postalCode)] where Self.isBlank(value) {
            return reject(.invalidField, "shipping_address.\(field)", "shipping_address.\(field) must not be empty")
        }
        if address.country.count != 2 || !address.country.allSatisfy({ $0.isASCII && $0.isUppercase }) {
            return reject(.invalidField, "shipping_address.country", "shipping_address.country must be a two-letter ISO code such as \"US\"")
        }
        if let amount = order.amount {
            // Compared in Double first: an amount beyond Int64's cents (1e300) must be a
            // mismatch, not a trap in the conversion.
            let statedCents = (amount * 100).rounded()
            if !(abs(statedCents) < 9e18) || Int64(statedCents) != order.amountCents {
                return reject(.amountMismatch, "amount", "amount \(amount) does not match the items' total \(Money.format(cents: order.amountCents))")
            }
        }
        return nil
    }

    static func isPlausibleEmail(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, email.utf8.count <= 254 else { return false }
        let domain = String(parts[1])
        guard domain.containsText("."), !domain.hasPrefix("."), !domain.hasSuffix("."), !domain.containsText("..") else { return false }
        return !email.contains(where: { $0.isWhitespace || $0 == "," || $0 == "<" || $0 == ">" })
    }
}
