import SagaDomain

/// Where an order stands, as the tracker records it.
public enum OrderState: String, Codable, Sendable, CaseIterable {
    case accepted
    case payment
    case inventory
    case shipping
    case notification
    case compensating
    case completed
    case compensated
    case manualReview = "manual_review"

    /// `completed` and `compensated` are final; `manual_review` is parked (an operator may redrive it).
    public var isTerminal: Bool { self == .completed || self == .compensated || self == .manualReview }
    public var isFinal: Bool { self == .completed || self == .compensated }

    public init(step: SagaStep) {
        switch step {
        case .payment: self = .payment
        case .inventory: self = .inventory
        case .shipping: self = .shipping
        case .notification: self = .notification
        }
    }

    /// The step an in-progress order is in (`accepted` waits for payment).
    public var step: SagaStep? {
        switch self {
        case .accepted, .payment: .payment
        case .inventory: .inventory
        case .shipping: .shipping
        case .notification: .notification
        default: nil
        }
    }

    static let terminalSQL = "('completed','compensated','manual_review')"
}
