import SagaDomain

/// One input: any bytes as an order payload. The validator must answer (an order or a
/// rejection) and never trap; an accepted order must survive its own canonical form.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOrderValidator(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let validator = OrderValidator()
    if case .success(let order) = validator.validate(bytes) {
        let canonical = order.canonicalJSON()
        guard case .success(let again) = validator.validate(canonical), again.orderID == order.orderID, again.amountCents == order.amountCents else {
            fatalError("an accepted order does not survive its canonical JSON")
        }
        _ = again.totalUnits
    }
    if let document = try? JSONValue.parse(bytes) { _ = try? Order(json: document).amountCents }
    return 0
}
