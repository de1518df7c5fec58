import Dispatcher
import SagaDomain
import StoreDatabase
import Workers

/// The conservation invariants of the product contract (../shared/DESIGN.md, "Guarantees"),
/// checkable at any time from the stores alone: money charged minus refunded equals what completed orders cost; units that left the shelf
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
        // Each store answers for its own records; the check only compares them.
        let dispatcher = try DispatcherStore(location: location, readOnly: true)
        let money = try SimulatedPaymentGateway(location: location, world: SimulatedWorld(profile: .none), readOnly: true).moneyByOrder()
        let inventory = try InventoryStore(location: location, readOnly: true)
        let reserved = try inventory.reservationsByOrder()
        let stock = try inventory.unitsTaken()
        let shipments = try ShippingStore(location: location, readOnly: true).shipmentStatusByOrder()
        let notices = try NotificationStore(location: location, readOnly: true).noticeByOrder()
        let heldUnits = reserved.values.filter(\.isHeld).reduce(Int64(0)) { $0 + $1.units }

        var violations: [Violation] = []
        var checked = 0
        var inFlight = 0
        var completedAmount: Int64 = 0
        var completedUnits: Int64 = 0
        var terminalCharged: Int64 = 0
        var terminalRefunded: Int64 = 0
        let orders = try dispatcher.connection.query("SELECT order_id, state, amount_cents, units FROM orders") { ($0.text(0), $0.text(1), $0.int(2), $0.int(3)) }
        for (id, stateText, amount, units) in orders {
            let m = money[id] ?? SimulatedPaymentGateway.OrderMoney()
            if m.charges > 1 { violations.append(Violation(orderID: id, invariant: "charged_once", detail: "charged \(m.charges) times")) }
            guard let state = OrderState(rawValue: stateText), state.isFinal else {
                inFlight += 1
                continue
            }
            checked += 1
            terminalCharged += m.chargedCents
            terminalRefunded += m.refundedCents
            let reservation = reserved[id]
            if state == .completed {
                completedAmount += amount
                completedUnits += units
                if m.chargedCents - m.refundedCents != amount {
                    violations.append(Violation(orderID: id, invariant: "money", detail: "completed order of \(SagaDomain.Money.format(cents: amount)) has net charge \(SagaDomain.Money.format(cents: m.chargedCents - m.refundedCents))"))
                }
                if reservation?.isHeld != true || reservation?.units != units {
                    violations.append(Violation(orderID: id, invariant: "stock", detail: "completed order of \(units) units holds reservation \(reservation.map { "\($0.units) units, \($0.status)" } ?? "none")"))
                }
                if shipments[id] != "prepared" {
                    violations.append(Violation(orderID: id, invariant: "shipment", detail: "completed order has shipment \(shipments[id] ?? "none")"))
                }
                if notices[id] != "confirmation" {
                    violations.append(Violation(orderID: id, invariant: "one_notice", detail: "completed order got \(notices[id] ?? "no notice")"))
                }
            } else {
                if m.chargedCents - m.refundedCents != 0 {
                    violations.append(Violation(orderID: id, invariant: "money", detail: "compensated order still has net charge \(SagaDomain.Money.format(cents: m.chargedCents - m.refundedCents))"))
                }
                if reservation?.isHeld == true {
                    violations.append(Violation(orderID: id, invariant: "stock", detail: "compensated order still holds \(reservation!.units) reserved units"))
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
        let totalCharged = money.values.reduce(Int64(0)) { $0 + $1.chargedCents }
        let totalRefunded = money.values.reduce(Int64(0)) { $0 + $1.refundedCents }
        return Report(
            ok: violations.isEmpty, violations: violations, ordersChecked: checked, inFlight: inFlight,
            chargedCents: totalCharged, refundedCents: totalRefunded, completedAmountCents: completedAmount,
            unitsTaken: stock, completedUnits: completedUnits)
    }
}
