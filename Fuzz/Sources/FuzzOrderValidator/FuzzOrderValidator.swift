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
    // The bulk loader's partial parse must accept and refuse exactly what the full one does,
    // and keep the named members as the full parse reads them.
    let kept = ["order_id", "customer_tier", "amount", "items"]
    let full = Result { () throws(JSONValue.ParseError) in try JSONValue.parse(bytes) }
    let partial = Result { () throws(JSONValue.ParseError) in try JSONValue.parse(bytes, keepingMembers: Set(kept)) }
    switch (full, partial) {
    case (.success(let whole), .success(let some)):
        guard some == whole.keepingMembers(Set(kept)) else { fatalError("the partial parse kept other members than the full parse has") }
    case (.failure(let a), .failure(let b)):
        guard a.offset == b.offset, a.message == b.message else { fatalError("the partial parse failed differently: \(a) vs \(b)") }
    default:
        fatalError("the partial parse and the full parse disagree on whether the input is JSON")
    }
    return 0
}
