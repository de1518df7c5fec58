import Foundation
import SagaAssembly
import SagaDomain

/// Decodes the same synthetic order payloads with the saga's own parser (`OrderValidator`:
/// parse, map to `Order`, check) and with Foundation's `JSONSerialization` and `JSONDecoder`
/// (the swift-foundation of the toolchain), so the decision to keep a hand-written parser
/// rests on a measurement (`fulfillment bench json`).
public struct JSONParserBenchmark: Sendable {
    public struct Options: Sendable {
        public var orders = 20_000
        public var rounds = 5
        public init() {}
    }

    public struct Decoder: Codable, Sendable {
        public var name: String
        public var orders_per_s: Double
        public var ns_per_order: Double
        public var mb_per_s: Double
    }

    public struct Report: Codable, Sendable {
        public var schema_version = 1
        public var orders: Int
        public var rounds: Int
        public var mean_payload_bytes: Int
        /// Median round of each decoder.
        public var decoders: [Decoder]
        /// Foundation's fastest decoder's time per order over ours.
        public var ours_speedup: Double
    }

    /// What `JSONDecoder` decodes into: the order's fields, as a Codable user would write them.
    struct CodableOrder: Decodable {
        struct Item: Decodable {
            var sku: String
            var quantity: Int
            var unit_price: Double
        }
        struct Payment: Decodable {
            var method: String
            var token: String
        }
        struct Address: Decodable {
            var name: String
            var line1: String
            var city: String
            var postal_code: String
            var country: String
        }
        var order_id: String
        var customer_id: String
        var customer_tier: String?
        var currency: String
        var items: [Item]
        var payment: Payment
        var shipping_address: Address
        var email: String
        var amount: Double?
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    public func run(progress: (String) -> Void) throws -> Report {
        let generator = LoadGenerator(count: options.orders, vipShare: 0.05, rate: nil, skuCount: 1000, runTag: "bench")
        let payloads = (0..<options.orders).map { generator.order($0).canonicalJSON() }
        let datas = payloads.map { Data($0) }
        let bytes = payloads.reduce(0) { $0 + $1.count }
        let validator = OrderValidator()
        let decoder = JSONDecoder()
        var checksum = 0
        let decoders: [(String, () throws -> Void)] = [
            ("ours (OrderValidator: parse + map + check)", {
                for payload in payloads {
                    if case .success(let order) = validator.validate(payload) { checksum &+= order.items.count }
                }
            }),
            ("ours, parse only (JSONValue.parse)", {
                for payload in payloads {
                    if case .object(let members) = try JSONValue.parse(payload) { checksum &+= members.count }
                }
            }),
            ("Foundation JSONDecoder (Codable struct)", {
                for data in datas { checksum &+= try decoder.decode(CodableOrder.self, from: data).items.count }
            }),
            ("Foundation JSONSerialization (parse only)", {
                for data in datas {
                    if let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] { checksum &+= object.count }
                }
            }),
            ("Foundation JSONSerialization + Order mapping", {
                for data in datas {
                    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
                    checksum &+= Self.order(from: object)?.items.count ?? 0
                }
            }),
        ]
        var results: [Decoder] = []
        for (name, body) in decoders {
            try body()  // warm-up
            var seconds: [Double] = []
            for _ in 0..<options.rounds {
                let start = ContinuousClock.now
                try body()
                let elapsed = ContinuousClock.now - start
                seconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
            let median = seconds.sorted()[seconds.count / 2]
            let result = Decoder(
                name: name, orders_per_s: Double(options.orders) / median, ns_per_order: median / Double(options.orders) * 1e9,
                mb_per_s: Double(bytes) / median / 1e6)
            progress("\(name): \(Int(result.orders_per_s)) orders/s (\(Int(result.ns_per_order)) ns each)")
            results.append(result)
        }
        precondition(checksum != 0)
        let ours = results[0].ns_per_order
        let foundation = min(results[2].ns_per_order, results[4].ns_per_order)
        return Report(
            orders: options.orders, rounds: options.rounds, mean_payload_bytes: bytes / max(1, payloads.count), decoders: results,
            ours_speedup: foundation / ours)
    }

    /// The mapping a `JSONSerialization` user writes by hand (without the checks).
    static func order(from object: [String: Any]) -> Order? {
        guard let id = object["order_id"] as? String, let customer = object["customer_id"] as? String,
              let currency = object["currency"] as? String, let items = object["items"] as? [[String: Any]],
              let payment = object["payment"] as? [String: Any], let address = object["shipping_address"] as? [String: Any],
              let email = object["email"] as? String
        else { return nil }
        let parsedItems = items.compactMap { item -> OrderItem? in
            guard let sku = item["sku"] as? String, let quantity = item["quantity"] as? Int, let price = item["unit_price"] as? Double else { return nil }
            return OrderItem(sku: sku, quantity: quantity, unitPrice: price)
        }
        return Order(
            orderID: id, customerID: customer, customerTier: (object["customer_tier"] as? String).flatMap(CustomerTier.init(rawValue:)) ?? .standard,
            currency: currency, items: parsedItems,
            payment: PaymentDetails(method: payment["method"] as? String ?? "", token: payment["token"] as? String ?? ""),
            shippingAddress: ShippingAddress(
                name: address["name"] as? String ?? "", line1: address["line1"] as? String ?? "", city: address["city"] as? String ?? "",
                postalCode: address["postal_code"] as? String ?? "", country: address["country"] as? String ?? ""),
            email: email, amount: object["amount"] as? Double)
    }
}
