@testable import Broker
import Foundation
import Messaging
import TestSupport
import Testing

/// The committed-offsets log when its compaction cannot be written (a full disk): the commits
/// go on, and what was committed is what a restart reads.
@Suite struct OffsetStoreTests {
    @Test func aCompactionThatCannotBeWrittenLeavesTheLogWorking() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/consumer-offsets.log"
        let tp = TopicPartition("orders", 3)
        let store = try OffsetStore(path: path, readOnly: false, compactAfterBytes: 1)
        // The compacted copy is written beside the log first; a directory in its place makes
        // every compaction fail, as a full disk would.
        try FileManager.default.createDirectory(atPath: path + ".tmp", withIntermediateDirectories: false)
        for offset in Int64(1)...12 {
            try store.append(group: "g", offsets: [tp: offset])
            try store.sync()
        }
        #expect(store.committed(group: "g", tp) == 12)
        #expect(try OffsetStore(path: path, readOnly: true).committed(group: "g", tp) == 12)

        // Once the compaction can be written, it is, and the log shrinks to one entry.
        try FileManager.default.removeItem(atPath: path + ".tmp")
        let before = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        try store.append(group: "g", offsets: [tp: 13])
        try store.sync()
        let after = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect(after < before)
        try store.append(group: "g", offsets: [tp: 14])
        try store.sync()
        #expect(try OffsetStore(path: path, readOnly: true).committed(group: "g", tp) == 14)
    }
}
