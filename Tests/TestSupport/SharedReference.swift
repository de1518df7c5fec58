import Foundation

/// Inputs the tests read from `shared/reference`, the folder of material beside the
/// repository (never copied into it): the seed's Step Functions definition and the AWS
/// definitions of `shared/reference/asl`.
public enum SharedReference {
    /// The seed's ASL definition, from the first answer of
    /// shared/reference/step-functions-questions.txt (the definition our users start from),
    /// kept here so the tests of the import run wherever the repository is cloned;
    /// `seedMatchesTheQuestionsFile` checks it against the file when the file is there.
    /// One state per line.
    public static let seedDefinition = #"""
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

    /// Where the reference folder is: `$FULFILLMENT_REFERENCE_DIR`, else `shared/reference`
    /// beside the repository or beside any folder above it, else `/work/shared/reference`
    /// (the development machine's). `nil` when none holds the AWS definitions.
    public static let folder: URL? = {
        var candidates: [URL] = []
        if let explicit = ProcessInfo.processInfo.environment["FULFILLMENT_REFERENCE_DIR"], !explicit.isEmpty {
            candidates.append(URL(fileURLWithPath: explicit))
        }
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while directory.path != "/" {
            directory = directory.deletingLastPathComponent()
            candidates.append(directory.appendingPathComponent("shared/reference"))
        }
        candidates.append(URL(fileURLWithPath: "/work/shared/reference"))
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("asl/travel-reservation-saga.json").path) }
    }()

    /// Why the tests that read the AWS definitions do not run, shown where they are skipped.
    public static let missing = "the AWS reference definitions are not on this machine (shared/reference/asl beside the repository, or FULFILLMENT_REFERENCE_DIR)"
}
