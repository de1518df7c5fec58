/// An order as users submit it on the `orders` topic (../shared/DESIGN.md, "The order"); read with
/// `Order(json:)` and written with `canonicalJSON()`.
public struct Order: Hashable, Sendable {
    public var orderID: String
    public var customerID: String
    public var customerTier: CustomerTier
    public var currency: String
    public var items: [OrderItem]
    public var payment: PaymentDetails
    public var shippingAddress: ShippingAddress
    public var email: String
    /// Optional on input; when present it must equal the sum of the items.
    public var amount: Double?

    public init(
        orderID: String, customerID: String, customerTier: CustomerTier = .standard, currency: String = "USD",
        items: [OrderItem], payment: PaymentDetails, shippingAddress: ShippingAddress, email: String, amount: Double? = nil
    ) {
        self.orderID = orderID
        self.customerID = customerID
        self.customerTier = customerTier
        self.currency = currency
        self.items = items
        self.payment = payment
        self.shippingAddress = shippingAddress
        self.email = email
        self.amount = amount
    }

    /// The order total in minor units (cents), summed exactly from the items. Saturates
    /// instead of trapping: a validated order stays far below the limits, but steps also read
    /// requests that anyone with access to a topic could have written.
    public var amountCents: Int64 {
        items.reduce(Int64(0)) { total, item in
            let (line, lineOverflow) = Int64(item.quantity).multipliedReportingOverflow(by: item.unitPriceCents)
            let (sum, sumOverflow) = total.addingReportingOverflow(line)
            return lineOverflow || sumOverflow ? Int64.max : sum
        }
    }

    /// Which lane the order rides: VIP when its customer's tier is `vip` or its amount is
    /// above `vipAbove` (the configuration's `vip.amount_threshold`). One rule for every
    /// producer (`produce`, the admin API, the load generator) and the intake.
    public func lane(vipAbove threshold: Double) -> Priority {
        customerTier == .vip || Double(amountCents) > threshold * 100 ? .vip : .standard
    }

    public var totalUnits: Int {
        items.reduce(0) { total, item in
            let (sum, overflow) = total.addingReportingOverflow(item.quantity)
            return overflow ? Int.max : sum
        }
    }
}

public enum CustomerTier: String, Codable, Hashable, Sendable {
    case standard
    case vip
}

public struct OrderItem: Hashable, Sendable {
    public var sku: String
    public var quantity: Int
    public var unitPrice: Double

    public init(sku: String, quantity: Int, unitPrice: Double) {
        self.sku = sku
        self.quantity = quantity
        self.unitPrice = unitPrice
    }

    /// Saturating, like `Order.amountCents` (a price of 1e300 must not trap).
    public var unitPriceCents: Int64 {
        let cents = (unitPrice * 100).rounded()
        guard cents.isFinite else { return cents < 0 ? Int64.min : Int64.max }
        return cents >= 9.2e18 ? Int64.max : cents <= -9.2e18 ? Int64.min : Int64(cents)
    }
}

public struct PaymentDetails: Hashable, Sendable {
    public var method: String
    public var token: String

    public init(method: String = "card", token: String) {
        self.method = method
        self.token = token
    }
}

public struct ShippingAddress: Hashable, Sendable {
    public var name: String
    public var line1: String
    public var city: String
    public var postalCode: String
    public var country: String

    public init(name: String, line1: String, city: String, postalCode: String, country: String) {
        self.name = name
        self.line1 = line1
        self.city = city
        self.postalCode = postalCode
        self.country = country
    }
}

/// Money in minor units, printed the way users wrote it.
public enum Money {
    public static func format(cents: Int64) -> String {
        let sign = cents < 0 ? "-" : ""
        let magnitude = cents.magnitude
        let fraction = magnitude % 100
        return "\(sign)\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
