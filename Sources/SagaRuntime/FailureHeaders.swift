import Foundation
import Messaging
import SagaDomain
import Synchronization

/// Copies the failure headers of ../shared/DESIGN.md onto a record sent to a retry tier or a DLT.
public enum FailureHeaders {
    public static func make(from message: InboundMessage, errorClass: String, errorMessage: String, failedAt: Int64, attempt: Int) -> [RecordHeader] {
        // Replace the attempt and error headers; keep the original position of the first failure.
        var headers = message.record.headers.filter { header in
            ![SagaHeader.attempt, SagaHeader.errorClass, SagaHeader.errorMessage, SagaHeader.failedAt].contains(header.key)
        }
        if message.record.header(SagaHeader.originalTopic) == nil {
            headers.append(RecordHeader(SagaHeader.originalTopic, message.record.topic))
            headers.append(RecordHeader(SagaHeader.originalPartition, String(message.record.partition)))
            headers.append(RecordHeader(SagaHeader.originalOffset, String(message.record.offset)))
        }
        headers.append(RecordHeader(SagaHeader.attempt, String(attempt)))
        headers.append(RecordHeader(SagaHeader.errorClass, errorClass))
        headers.append(RecordHeader(SagaHeader.errorMessage, String(errorMessage.prefix(500))))
        headers.append(RecordHeader(SagaHeader.failedAt, String(failedAt)))
        if message.record.header(SagaHeader.sagaID) == nil, !message.orderID.isEmpty {
            headers.append(RecordHeader(SagaHeader.sagaID, "saga-\(message.orderID)"))
        }
        return headers
    }
}
