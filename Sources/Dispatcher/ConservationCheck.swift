import StoreDatabase
import SagaDomain
import Workers

/// The conservation invariants of DESIGN.md, checkable at any time from the stores alone:
/// money charged minus refunded equals what completed orders cost; units that left the shelf
/// are exactly those of completed orders; no order is charged twice; no compensated order
/// keeps a shipment; each finished order got exactly one notice. Orders still in flight are
/// left out of the per-order checks and counted.
public struct ConservationCheck: Sendable {
    public struct Violation: Codable, Hashable, Sendable {
        public var orderID: String?
        public var invariant: String
        public var detail: String

        enum CodingKeys: String, CodingKey {
            case orderID = "order_id", invariant, detail
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(orderID, forKey: .orderID)
            try c.encode(invariant, forKey: .invariant)
            try c.encode(detail, forKey: .detail)
        }
    }

    public struct Report: Codable, Sendable {
        /// docs/json.md: bumped when a key changes meaning or goes away.
        public var schema_version = 1
        public var ok: Bool
        public var violations: [Violation]
        public var ordersChecked: Int
        public var inFlight: Int
        public var chargedCents: Int64
        public var refundedCents: Int64
        public var completedAmountCents: Int64
        public var unitsTaken: Int64
        public var completedUnits: Int64

        enum CodingKeys: String, CodingKey {
            case schema_version, ok, violations, inFlight = "in_flight", ordersChecked = "orders_checked"
            case chargedCents = "charged_cents", refundedCents = "refunded_cents", completedAmountCents = "completed_amount_cents"
            case unitsTaken = "units_taken", completedUnits = "completed_units"
        }
    }

    /// A directory of SQLite stores or a PostgreSQL URL.
    let location: String

    public init(location: String) { self.location = location }

    public func run() throws -> Report {
        let dispatcher = try DispatcherStore(location: location, readOnly: true)
        let ledger = try StoreConnection.open(location: location, name: "gateway", readOnly: true)
        let inventory = try StoreConnection.open(location: location, name: "inventory", readOnly: true)
        let shipping = try StoreConnection.open(location: location, name: "shipping", readOnly: true)
        let notifications = try StoreConnection.open(location: location, name: "notifications", readOnly: true)

        struct Money: Sendable { var charged: Int64 = 0; var refunded: Int64 = 0; var charges = 0 }
        var money: [String: Money] = [:]
        for (order, kind, amount, outcome) in try ledger.query("SELECT order_id, kind, amount_cents, outcome FROM ledger", [], { ($0.text(0), $0.text(1), $0.int(2), $0.text(3)) }) {
            if kind == "charge", outcome == "charged" {
                money[order, default: Money()].charged += amount
                money[order, default: Money()].charges += 1
            } else if kind == "refund" {
                money[order, default: Money()].refunded += amount
            }
        }
        let reserved = Dictionary(uniqueKeysWithValues: try inventory.query("SELECT order_id, units, status FROM reservations") { ($0.text(0), ($0.int(1), $0.text(2))) })
        let shipments = Dictionary(uniqueKeysWithValues: try shipping.query("SELECT order_id, status FROM shipments") { ($0.text(0), $0.text(1)) })
        let notices = Dictionary(uniqueKeysWithValues: try notifications.query("SELECT order_id, kind FROM outbox") { ($0.text(0), $0.text(1)) })
        let stock = try inventory.query("SELECT COALESCE(SUM(initial_units - units), 0) FROM stock") { $0.int(0) }.first ?? 0
        let heldUnits = reserved.values.filter { $0.1 == "reserved" }.reduce(Int64(0)) { $0 + $1.0 }

        var violations: [Violation] = []
        var checked = 0
        var inFlight = 0
        var completedAmount: Int64 = 0
        var completedUnits: Int64 = 0
        var terminalCharged: Int64 = 0
        var terminalRefunded: Int64 = 0
        let orders = try dispatcher.connection.query("SELECT order_id, state, amount_cents, units FROM orders") { ($0.text(0), $0.text(1), $0.int(2), $0.int(3)) }
        for (id, stateText, amount, units) in orders {
            let m = money[id] ?? Money()
            if m.charges > 1 { violations.append(Violation(orderID: id, invariant: "charged_once", detail: "charged \(m.charges) times")) }
            guard let state = OrderState(rawValue: stateText), state.isFinal else {
                inFlight += 1
                continue
            }
            checked += 1
            terminalCharged += m.charged
            terminalRefunded += m.refunded
            let reservation = reserved[id]
            if state == .completed {
                completedAmount += amount
                completedUnits += units
                if m.charged - m.refunded != amount {
                    violations.append(Violation(orderID: id, invariant: "money", detail: "completed order of \(SagaDomain.Money.format(cents: amount)) has net charge \(SagaDomain.Money.format(cents: m.charged - m.refunded))"))
                }
                if reservation?.1 != "reserved" || reservation?.0 != units {
                    violations.append(Violation(orderID: id, invariant: "stock", detail: "completed order of \(units) units holds reservation \(reservation.map { "\($0.0) units, \($0.1)" } ?? "none")"))
                }
                if shipments[id] != "prepared" {
                    violations.append(Violation(orderID: id, invariant: "shipment", detail: "completed order has shipment \(shipments[id] ?? "none")"))
                }
                if notices[id] != "confirmation" {
                    violations.append(Violation(orderID: id, invariant: "one_notice", detail: "completed order got \(notices[id] ?? "no notice")"))
                }
            } else {
                if m.charged - m.refunded != 0 {
                    violations.append(Violation(orderID: id, invariant: "money", detail: "compensated order still has net charge \(SagaDomain.Money.format(cents: m.charged - m.refunded))"))
                }
                if reservation?.1 == "reserved" {
                    violations.append(Violation(orderID: id, invariant: "stock", detail: "compensated order still holds \(reservation!.0) reserved units"))
                }
                if shipments[id] == "prepared" {
                    violations.append(Violation(orderID: id, invariant: "no_shipment_for_compensated", detail: "compensated order has a prepared shipment"))
                }
                if notices[id] != "failure" {
                    violations.append(Violation(orderID: id, invariant: "one_notice", detail: "compensated order got \(notices[id] ?? "no notice")"))
                }
            }
        }
        if terminalCharged - terminalRefunded != completedAmount {
            violations.append(Violation(orderID: nil, invariant: "money", detail: "charged − refunded over finished orders is \(SagaDomain.Money.format(cents: terminalCharged - terminalRefunded)), completed orders total \(SagaDomain.Money.format(cents: completedAmount))"))
        }
        if stock != heldUnits {
            violations.append(Violation(orderID: nil, invariant: "stock", detail: "initial − current stock is \(stock) units but reservations hold \(heldUnits)"))
        }
        if inFlight == 0 && stock != completedUnits {
            violations.append(Violation(orderID: nil, invariant: "stock", detail: "initial − final stock is \(stock) units, completed orders hold \(completedUnits)"))
        }
        let totalCharged = money.values.reduce(Int64(0)) { $0 + $1.charged }
        let totalRefunded = money.values.reduce(Int64(0)) { $0 + $1.refunded }
        return Report(
            ok: violations.isEmpty, violations: violations, ordersChecked: checked, inFlight: inFlight,
            chargedCents: totalCharged, refundedCents: totalRefunded, completedAmountCents: completedAmount,
            unitsTaken: stock, completedUnits: completedUnits)
    }
}
