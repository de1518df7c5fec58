/// How Step Functions error names and our error classes translate.
///
/// - `States.ALL` stays `States.ALL` (every error).
/// - `States.Timeout` is `Timeout`, `States.HeartbeatTimeout` is `HeartbeatTimeout`.
/// - `States.TaskFailed` becomes `TransientError` and `HeartbeatTimeout`. In Step Functions it
///   matches every error but `States.Timeout`, business errors included; a retry or catch
///   written on it is meant for what goes wrong in transit (the seed: "Lambda cold start,
///   DynamoDB throttle"), which our workers raise as `TransientError`. Business errors
///   (`CardDeclined`, `OutOfStock`) must be named to be retried or compensated.
/// - `Lambda.*` and AWS throttling/service errors (`…Throttling…`, `…TooManyRequests…`,
///   `…RequestLimitExceeded`, `…ProvisionedThroughputExceeded…`, `…ServiceUnavailable…`,
///   `…InternalServerError…`, `…ServiceException`) become `TransientError`.
/// - Anything else (`OutOfStock`, `ErrProcessPayment`) is kept by name.
///
/// Exporting goes back: `TransientError` is written as itself plus the four Lambda service
/// errors AWS recommends retrying, so a Step Functions user sees the usual retrier and
/// importing it gives `TransientError` again.
public enum ASLErrorName {
    public static let lambdaServiceErrors = [
        "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException",
    ]
    static let transientMarkers = [
        "Throttl", "TooManyRequests", "RequestLimitExceeded", "ProvisionedThroughputExceeded", "ServiceUnavailable",
        "InternalServerError", "ServiceException",
    ]

    /// Our error classes for one Step Functions error name.
    public static func ours(_ name: String) -> [String] {
        switch name {
        case "States.ALL": return ["States.ALL"]
        case "States.Timeout": return ["Timeout"]
        case "States.HeartbeatTimeout": return ["HeartbeatTimeout"]
        case "States.TaskFailed": return ["TransientError", "HeartbeatTimeout"]
        default:
            if name.hasPrefix("Lambda.") || (name.contains(".") && transientMarkers.contains { name.contains($0) }) {
                return ["TransientError"]
            }
            return [name]
        }
    }

    /// Our error classes for a list of Step Functions names, in first-seen order, once each.
    public static func ours(_ names: [String]) -> [String] {
        names.flatMap(ours).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    /// The Step Functions names for one of our error classes.
    public static func asl(_ errorClass: String) -> [String] {
        switch errorClass {
        case "Timeout": ["States.Timeout"]
        case "HeartbeatTimeout": ["States.HeartbeatTimeout"]
        case "TransientError": ["TransientError"] + lambdaServiceErrors
        default: [errorClass]
        }
    }

    public static func asl(_ errorClasses: [String]) -> [String] {
        errorClasses.flatMap(asl).reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }
}
