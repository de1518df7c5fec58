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
        // Each store answers for its own records; the check only compares them. Every store
        // is read sorted by order id and merged, so memory stays flat however many orders.
        let dispatcher = try DispatcherStore(location: location, readOnly: true)
        let gateway = try SimulatedPaymentGateway(location: location, world: SimulatedWorld(profile: .none), readOnly: true)
        let inventory = try InventoryStore(location: location, readOnly: true)
        let stock = try inventory.unitsTaken()
        let heldUnits = try inventory.heldUnits()
        let totals = try gateway.moneyTotals()
        let money = OrderedRows(try gateway.moneyRowsByOrder())
        let reserved = OrderedRows(try inventory.reservationsByOrder())
        let shipments = OrderedRows(try ShippingStore(location: location, readOnly: true).shipmentStatusByOrder())
        let notices = OrderedRows(try NotificationStore(location: location, readOnly: true).noticeByOrder())

        var violations: [Violation] = []
        var checked = 0
        var inFlight = 0
        var completedAmount: Int64 = 0
        var completedUnits: Int64 = 0
        var terminalCharged: Int64 = 0
        var terminalRefunded: Int64 = 0
        let orders = try dispatcher.connection.cursor("SELECT order_id, state, amount_cents, units FROM orders \(dispatcher.connection.orderedByBytes("order_id"))") {
            ($0.text(0), $0.text(1), $0.int(2), $0.int(3))
        }
        while let (id, stateText, amount, units) = try orders.next() {
            var m = SimulatedPaymentGateway.OrderMoney()
            for row in try money.rows(for: id) {
                m.chargedCents += row.chargedCents
                m.refundedCents += row.refundedCents
                m.charges += row.charges
            }
            let reservation = try reserved.rows(for: id).first
            let shipment = try shipments.rows(for: id).first
            let notice = try notices.rows(for: id).first
            if m.charges > 1 { violations.append(Violation(orderID: id, invariant: "charged_once", detail: "charged \(m.charges) times")) }
            guard let state = OrderState(rawValue: stateText), state.isFinal else {
                inFlight += 1
                continue
            }
            checked += 1
            terminalCharged += m.chargedCents
            terminalRefunded += m.refundedCents
            if state == .completed {
                completedAmount += amount
                completedUnits += units
                if m.chargedCents - m.refundedCents != amount {
                    violations.append(Violation(orderID: id, invariant: "money", detail: "completed order of \(SagaDomain.Money.format(cents: amount)) has net charge \(SagaDomain.Money.format(cents: m.chargedCents - m.refundedCents))"))
                }
                if reservation?.isHeld != true || reservation?.units != units {
                    violations.append(Violation(orderID: id, invariant: "stock", detail: "completed order of \(units) units holds reservation \(reservation.map { "\($0.units) units, \($0.status)" } ?? "none")"))
                }
                if shipment != "prepared" {
                    violations.append(Violation(orderID: id, invariant: "shipment", detail: "completed order has shipment \(shipment ?? "none")"))
                }
                if notice != "confirmation" {
                    violations.append(Violation(orderID: id, invariant: "one_notice", detail: "completed order got \(notice ?? "no notice")"))
                }
            } else {
                if m.chargedCents - m.refundedCents != 0 {
                    violations.append(Violation(orderID: id, invariant: "money", detail: "compensated order still has net charge \(SagaDomain.Money.format(cents: m.chargedCents - m.refundedCents))"))
                }
                if reservation?.isHeld == true {
                    violations.append(Violation(orderID: id, invariant: "stock", detail: "compensated order still holds \(reservation!.units) reserved units"))
                }
                if shipment == "prepared" {
                    violations.append(Violation(orderID: id, invariant: "no_shipment_for_compensated", detail: "compensated order has a prepared shipment"))
                }
                if notice != "failure" {
                    violations.append(Violation(orderID: id, invariant: "one_notice", detail: "compensated order got \(notice ?? "no notice")"))
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
        let totalCharged = totals.chargedCents
        let totalRefunded = totals.refundedCents
        return Report(
            ok: violations.isEmpty, violations: violations, ordersChecked: checked, inFlight: inFlight,
            chargedCents: totalCharged, refundedCents: totalRefunded, completedAmountCents: completedAmount,
            unitsTaken: stock, completedUnits: completedUnits)
    }
}

/// One store's rows sorted by order id (in UTF-8 byte order, as `orderedByBytes` sorts),
/// taken order by order while the dispatcher's orders are walked in the same order. Rows of
/// ids the walk never asks for (a store's record of an order the dispatcher does not know)
/// are passed over.
final class OrderedRows<Row> {
    private let cursor: RowCursor<(String, Row)>
    private var pending: (String, Row)?

    init(_ cursor: RowCursor<(String, Row)>) { self.cursor = cursor }

    /// The rows for `id`; ids asked for must rise.
    func rows(for id: String) throws -> [Row] {
        var found: [Row] = []
        while let (rowID, row) = try pending ?? cursor.next() {
            pending = (rowID, row)
            if rowID.utf8.lexicographicallyPrecedes(id.utf8) {
                pending = nil
                continue
            }
            guard rowID.utf8.elementsEqual(id.utf8) else { break }
            found.append(row)
            pending = nil
        }
        return found
    }
}
