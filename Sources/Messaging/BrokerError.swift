/// Every failure the broker abstraction reports. The code is extensible (a struct, not an
/// enum) so new backends can add codes without breaking callers that switch on them.
public struct BrokerError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// Whether retrying the same call later can succeed.
        public let isRetriable: Bool
        /// Whether the client is unusable from now on (e.g. an idempotent producer that lost
        /// its sequence): the process should stop and be restarted.
        public let isFatal: Bool

        public init(name: String, isRetriable: Bool = false, isFatal: Bool = false) {
            self.name = name
            self.isRetriable = isRetriable
            self.isFatal = isFatal
        }

        public var description: String { name }

        public static let unknownTopic = Code(name: "unknown_topic")
        public static let topicExists = Code(name: "topic_exists")
        public static let invalidTopic = Code(name: "invalid_topic")
        public static let invalidPartition = Code(name: "invalid_partition")
        public static let offsetOutOfRange = Code(name: "offset_out_of_range")
        public static let corruptRecord = Code(name: "corrupt_record")
        public static let recordTooLarge = Code(name: "record_too_large")
        public static let dataDirectoryLocked = Code(name: "data_directory_locked")
        public static let readOnly = Code(name: "read_only")
        public static let io = Code(name: "io_error", isRetriable: true)
        /// The member no longer owns the partition (it was expelled or rebalanced away).
        public static let notPartitionOwner = Code(name: "not_partition_owner")
        public static let unknownMember = Code(name: "unknown_member")
        public static let closed = Code(name: "closed")
        public static let unsupported = Code(name: "unsupported")
        public static let invalidConfiguration = Code(name: "invalid_configuration")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var isRetriable: Bool { code.isRetriable }
    public var isFatal: Bool { code.isFatal }
    public var description: String { message }
}
