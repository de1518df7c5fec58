@testable import Broker
import Foundation
import Logging
import TestSupport
@testable import Messaging

func openBroker(_ directory: String, fsync: FsyncPolicy = .batch, segmentBytes: Int64 = 128 << 20, readOnly: Bool = false) throws -> EmbeddedBroker {
    var configuration = EmbeddedBroker.Configuration(dataDirectory: directory)
    configuration.fsync = fsync
    configuration.segmentBytes = segmentBytes
    configuration.readOnly = readOnly
    configuration.retentionCheckInterval = nil
    return try EmbeddedBroker(configuration: configuration, logger: Logger(label: "test"))
}

func record(_ topic: String, _ key: String?, _ value: String, headers: [RecordHeader] = [], partition: Int? = nil) -> ProducerRecord {
    var r = ProducerRecord(topic: topic, key: key, value: value, headers: headers)
    r.partition = partition
    return r
}

func bytes(hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        result.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return result
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// Reads every record of a partition through the public read API.
func readAll(_ broker: EmbeddedBroker, _ topic: String, _ partition: Int) async throws -> [ConsumerRecord] {
    var all: [ConsumerRecord] = []
    var offset: Int64 = 0
    while true {
        let chunk = try await broker.read(topic: topic, partition: partition, from: offset, maxRecords: 10_000)
        guard let last = chunk.last else { return all }
        all += chunk
        offset = last.offset + 1
    }
}

/// The values a member polls until `count` came or `timeout` passed, in the order polled.
func pollValues(_ consumer: any GroupConsumer, count: Int, timeout: Duration = .seconds(5)) async throws -> [String] {
    var values: [String] = []
    let deadline = ContinuousClock.now + timeout
    while values.count < count, ContinuousClock.now < deadline {
        values += try await consumer.poll(maxRecords: 10, maxWait: .milliseconds(200)).map(\.valueString)
    }
    return values
}
