import Foundation
import Logging
import Messaging
@testable import SagaRuntime
import TestSupport
import Testing

@Suite struct PoisonGuardTests {
    let tp = TopicPartition("payment.requested", 3)

    /// Coordinates read back from their text (`source-position`, `submitted.source`).
    @Test func coordinatesReadBackFromTheirText() {
        let coordinates = RecordCoordinates(TopicPartition("orders.priority", 3), 41)
        #expect(RecordCoordinates(coordinates.description) == coordinates)
        for text in ["", "orders", "orders/3", "orders/x/1", "orders/1/", "/1/2", "orders/1/2/3"] {
            #expect(RecordCoordinates(text) == nil, "\(text)")
        }
    }

    @Test func aCleanOrKilledRunLeavesNoSuspects() {
        let killed = PoisonGuard(previous: InHandRecord(crashed: false, inHand: [tp: 10...20]))
        #expect(!killed.isSuspicious)
        #expect(killed.quarantined.isEmpty)
    }

    @Test func aCrashMakesTheRecordsInHandSuspects() {
        var g = PoisonGuard(previous: InHandRecord(crashed: true, inHand: [tp: 10...20]))
        #expect(g.isSuspicious)
        g.tookAlone(RecordCoordinates(tp, 10))
        g.handledAlone(RecordCoordinates(tp, 10))
        #expect(g.isSuspicious, "offsets 11...20 are still to replay")
        g.tookAlone(RecordCoordinates(tp, 20))
        g.handledAlone(RecordCoordinates(tp, 20))
        #expect(!g.isSuspicious)
    }

    @Test func aSecondCrashWithOneRecordInHandQuarantinesExactlyThatRecord() {
        let g = PoisonGuard(previous: InHandRecord(crashed: true, inHand: [tp: 10...20], single: RecordCoordinates(tp, 14)))
        #expect(g.isQuarantined(RecordCoordinates(tp, 14)))
        #expect(!g.isQuarantined(RecordCoordinates(tp, 13)))
        #expect(!g.isSuspicious)
    }

    @Test func aQuarantineIsKeptUntilCommittedPast() {
        var g = PoisonGuard(previous: InHandRecord(crashed: false, quarantined: [RecordCoordinates(tp, 14)]))
        g.committed([tp: 14])
        #expect(g.isQuarantined(RecordCoordinates(tp, 14)))
        g.committed([tp: 15])
        #expect(!g.isQuarantined(RecordCoordinates(tp, 14)))
    }

    @Test func copiesOfWorkSetAsideAreSetAsideTooEvenAfterTheOriginalIsCommittedPast() {
        var g = PoisonGuard(previous: InHandRecord(crashed: true, inHand: [tp: 10...20], single: RecordCoordinates(tp, 14)))
        let work = SetAsideWork(topic: tp.topic, idempotencyKey: "o-1:payment")
        #expect(g.verdict(RecordCoordinates(tp, 13), work: SetAsideWork(topic: tp.topic, idempotencyKey: "o-0:payment")) == .handle)
        // Before its original is seen, a copy is not known as one.
        #expect(g.verdict(RecordCoordinates(tp, 9), work: work) == .handle)
        #expect(g.verdict(RecordCoordinates(tp, 14), work: work) == .setAside)
        g.committed([tp: 15])
        #expect(g.verdict(RecordCoordinates(tp, 31), work: work) == .copyOfSetAside)
        // The same key on another topic is other work (the tracker reads every step's events).
        #expect(g.verdict(RecordCoordinates(TopicPartition("payment.completed", 3), 2), work: SetAsideWork(topic: "payment.completed", idempotencyKey: "o-1:payment")) == .handle)
        // A record without a key is known only by where it sits.
        #expect(g.verdict(RecordCoordinates(tp, 32), work: nil) == .handle)
        // It survives a crash through the journal, not a clean start.
        var afterACrash = PoisonGuard(previous: g.record)
        #expect(afterACrash.verdict(RecordCoordinates(tp, 40), work: work) == .copyOfSetAside)
        var afterACleanStop = PoisonGuard(previous: InHandRecord())
        #expect(afterACleanStop.verdict(RecordCoordinates(tp, 40), work: work) == .handle)
    }

    @Test func inHandRangesShrinkWithCommits() {
        var g = PoisonGuard(previous: InHandRecord())
        g.took([RecordCoordinates(tp, 5), RecordCoordinates(tp, 9), RecordCoordinates(TopicPartition("x", 0), 1)])
        #expect(g.record.inHand[tp] == 5...9)
        g.committed([tp: 7])
        #expect(g.record.inHand[tp] == 7...9)
        g.committed([tp: 10])
        #expect(g.record.inHand[tp] == nil)
        #expect(g.record.inHand[TopicPartition("x", 0)] == 1...1)
    }

    @Test func journalsRoundTripThroughTheirFiles() throws {
        let record = InHandRecord(
            crashed: false, inHand: [tp: 1...9], single: RecordCoordinates(tp, 4), quarantined: [RecordCoordinates(TopicPartition("orders", 0), 77)],
            setAsideWork: [SetAsideWork(topic: tp.topic, idempotencyKey: "o 1:payment\nsingle x 0 1"), SetAsideWork(topic: tp.topic, idempotencyKey: "ö:payment")])
        var bytes = [UInt8(ascii: "C")] + PoisonJournals.render(record)
        var parsed = PoisonJournals.parse(bytes)
        #expect(parsed.crashed)
        parsed.crashed = false
        #expect(parsed == record)
        bytes[0] = UInt8(ascii: "R")
        #expect(!PoisonJournals.parse(bytes).crashed)
        // A journal torn or scribbled on reads as what it still says, never a crash of ours.
        #expect(PoisonJournals.parse(Array("Cinhand x\nsingle a b c\n\u{0}\u{0}".utf8)) == InHandRecord(crashed: true))
        #expect(PoisonJournals.parse(Array("R\nsetaside t 6\nsetaside t zz\nsetaside t c3\nsetaside t 6f\n".utf8)) == InHandRecord(setAsideWork: [SetAsideWork(topic: "t", idempotencyKey: "o")]))
    }

    /// A journal whose text gets shorter is padded with spaces to its length, not cut (a cut
    /// is a metadata change at every poll), and reads as its new text only.
    @Test func aShorterJournalIsPaddedAndReadsAsItsNewText() throws {
        let temporary = TemporaryDirectory("poison-pad")
        let journals = try PoisonJournals(directory: temporary.path, logger: Logger(label: "test"))
        let journal = try journals.journal("payment")
        let path = temporary.path + "/payment.inhand"
        let records = (0..<12).map { ConsumerRecord(topic: "payment.requested", partition: $0, offset: 5, timestamp: 0, key: nil, value: [], headers: []) }
        journal.took(records)
        let long = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(PoisonJournals.parse(Array(long)).inHand.count == 12)
        journal.committed(Dictionary(uniqueKeysWithValues: records.dropFirst().map { ($0.topicPartition, Int64(6)) }))
        journal.took([ConsumerRecord(topic: "payment.requested", partition: 0, offset: 6, timestamp: 0, key: nil, value: [], headers: [])])
        let short = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(short.count == long.count, "padded to the old length")
        let parsed = PoisonJournals.parse(Array(short))
        #expect(parsed.inHand == [TopicPartition("payment.requested", 0): 5...6])
        #expect(!parsed.crashed)
        journal.close()
    }

    @Test func aCleanStopRemovesTheJournalAndASecondProcessIsRefused() throws {
        let temporary = TemporaryDirectory("poison")
        let directory = temporary.path
        let journals = try PoisonJournals(directory: directory, logger: Logger(label: "test"))
        #expect(throws: BrokerError.self) { try PoisonJournals(directory: directory, logger: Logger(label: "test")) }
        let slot = try PoisonJournals.firstFree(base: (directory as NSString).deletingLastPathComponent, label: (directory as NSString).lastPathComponent, logger: Logger(label: "test"))
        #expect(slot.directory == directory + "-2")
        let journal = try journals.journal("payment")
        #expect(FileManager.default.fileExists(atPath: directory + "/payment.inhand"))
        journal.close()
        #expect(!FileManager.default.fileExists(atPath: directory + "/payment.inhand"))
        try? FileManager.default.removeItem(atPath: directory + "-2")
    }
}
