/// The Kafka protocol's error codes this broker answers with (Kafka's numbering).
enum WireErrorCode: Int16, Sendable {
    case none = 0
    case offsetOutOfRange = 1
    case corruptMessage = 2
    case unknownTopicOrPartition = 3
    case messageTooLarge = 10
    case coordinatorNotAvailable = 15
    case invalidTopic = 17
    case illegalGeneration = 22
    case inconsistentGroupProtocol = 23
    case invalidGroupID = 24
    case unknownMemberID = 25
    case invalidSessionTimeout = 26
    case rebalanceInProgress = 27
    case topicAuthorizationFailed = 29
    case clusterAuthorizationFailed = 31
    case unsupportedSaslMechanism = 33
    case illegalSaslState = 34
    case unsupportedVersion = 35
    case topicAlreadyExists = 36
    case invalidPartitions = 37
    case invalidReplicationFactor = 38
    case invalidRequest = 42
    case outOfOrderSequenceNumber = 45
    case invalidProducerEpoch = 47
    case transactionalIDAuthorizationFailed = 53
    case kafkaStorageError = 56
    case saslAuthenticationFailed = 58
    case topicDeletionDisabled = 73
    case unsupportedCompressionType = 76
}
