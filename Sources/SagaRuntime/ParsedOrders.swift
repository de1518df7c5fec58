import Foundation
import Messaging
import SagaDomain
import Synchronization

/// Orders already parsed in this process, by id and exact bytes: in the all-in-one process
/// the same order body passes intake and four steps, and parsing it once instead of five
/// times is a measurable share of the CPU. A hit needs byte-identical JSON, so a changed
/// body (a redrive, a user's own message) is always parsed afresh. Holds the orders seen
/// most recently (at most 2 × 16 × 1,024, about 50 MiB of 400-byte orders; the saga's window
/// in flight is smaller); lock-striped.
public final class ParsedOrders: Sendable {
    public static let shared = ParsedOrders()

    private static let stripes = 16
    private static let perStripe = 1024
    private final class Stripe: Sendable {
        let table = Mutex(RecentTable<String, (bytes: [UInt8], order: Order)>(capacity: ParsedOrders.perStripe))
    }

    private let stripes: [Stripe] = (0..<ParsedOrders.stripes).map { _ in Stripe() }

    private func stripe(_ id: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in id.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(Self.stripes))
    }

    public func order(_ id: String, bytes: [UInt8]) -> Order? {
        stripes[stripe(id)].table.withLock { table in
            guard let entry = table.value(id), entry.bytes == bytes else { return nil }
            return entry.order
        }
    }

    public func remember(_ order: Order, bytes: [UInt8]) {
        stripes[stripe(order.orderID)].table.withLock { table in
            table.set(order.orderID, (bytes, order))
        }
    }
}
