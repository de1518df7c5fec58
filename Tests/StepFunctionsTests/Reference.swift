import Foundation
import Testing

/// The test inputs: the seed's definition (from ../shared/reference/step-functions-questions.txt,
/// the one our users start from) and the eleven AWS definitions in ../shared/reference/asl,
/// read where they are (never copied into the repository).
enum Reference {
    /// The seed's ASL definition, as the questions file gives it (one state per line here).
    static let seed = #"""
{ "Comment": "Order fulfillment with compensation", "StartAt": "ValidatePayment", "States": { "ValidatePayment": { "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": { "FunctionName": "validate-payment", "Payload.$": "$" }, "Next": "ReserveInventory", "Retry": [{ "ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2 }], "Catch": [{ "ErrorEquals": ["States.ALL"], "Next": "PaymentFailed", "ResultPath": "$.error" }], "TimeoutSeconds": 300 },
"ReserveInventory": { "Type": "Task", "Resource": "arn:aws:lambda:invoke", "Parameters": { "FunctionName": "reserve-inventory", "Payload.$": "$" }, "Next": "PrepareShipment", "Retry": [{ "ErrorEquals": ["OutOfStock"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 1 }], "Catch": [{ "ErrorEquals": ["OutOfStock"], "Next": "RefundAndFail" }], "TimeoutSeconds": 300 },
"PrepareShipment": { "Type": "Task", "Resource": "arn:aws:lambda:invoke", "Parameters": { "FunctionName": "prepare-shipment", "Payload.$": "$" }, "Next": "NotifyCustomer", "TimeoutSeconds": 300 },
"NotifyCustomer": { "Type": "Task", "Resource": "arn:aws:sns:invoke", "Parameters": { "TopicArn": "arn:aws:sns:...", "Message.$": "$.order" }, "Next": "Success" },
"Success": { "Type": "Succeed" },
"PaymentFailed": { "Type": "Pass", "Result": "Payment validation failed", "Next": "OrderFailed" },
"RefundAndFail": { "Type": "Task", "Resource": "arn:aws:lambda:invoke", "Parameters": { "FunctionName": "refund-payment", "Payload.$": "$" }, "Next": "ReleaseInventory" },
"ReleaseInventory": { "Type": "Task", "Resource": "arn:aws:lambda:invoke", "Parameters": { "FunctionName": "release-inventory", "Payload.$": "$" }, "Next": "OrderFailed" },
"OrderFailed": { "Type": "Fail", "Error": "OrderProcessingFailed", "Cause": "See execution history" } } }
"""#

    /// `<repository>/../shared/reference/asl`, found from this file's path.
    static let folder: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/reference/asl")

    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let names = [
        "travel-reservation-saga.json", "order-long-lived-transaction.json", "order-long-lived-transaction-jsonata.json",
        "checkout-callback-choice.json", "curbside-pickup-callbacks.json", "config-backup-nested-map.json",
        "emit-and-wait-heartbeat.json", "webhook-provider-callback.json", "idempotent-parallel-wait.json",
        "invalid-jsonata-querylanguage-in-states.json", "unsupported-jsonata-distributed-map.json",
    ]

    /// A reference definition's bytes; a clear failure when the folder is not there.
    static func bytes(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
        let url = folder.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            Issue.record("the reference definitions are missing: expected \(url.path) (the shared/ folder beside the repository)", sourceLocation: sourceLocation)
            throw ReferenceMissing(path: url.path)
        }
        return Array(data)
    }

    struct ReferenceMissing: Error { var path: String }
}
