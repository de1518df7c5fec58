@testable import KafkaWire
import NIOCore
import Testing

/// The frame the listener writes: a length prefix, the written bytes, and the spliced parts
/// in their places, with large parts sent as the buffers they are (not copied) and small ones
/// copied in.
@Suite struct ReplyFrameTests {
    static func part(_ count: Int, seed: UInt8) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeBytes((0..<count).map { UInt8(truncatingIfNeeded: Int($0) &* 31) &+ seed })
        return buffer
    }

    static func joined(_ buffers: [ByteBuffer]) -> [UInt8] {
        buffers.flatMap { Array($0.readableBytesView) }
    }

    @Test(arguments: [
        [Int](), [10], [100_000], [10, 100_000], [100_000, 10, 100_000], [100_000, 100_000], [0, 9_000, 8_191, 8_192],
    ])
    func theFrameIsThePrefixThenTheResponseWithEveryPartInItsPlace(_ sizes: [Int]) {
        var writer = WireWriter()
        writer.int32(42)
        var expected: [UInt8] = [0, 0, 0, 42]
        for (i, size) in sizes.enumerated() {
            let part = Self.part(size, seed: UInt8(i))
            writer.string("p\(i)")
            expected += [0, 2] + Array("p\(i)".utf8)
            writer.bytes([part])
            expected += withUnsafeBytes(of: Int32(size).bigEndian, Array.init) + Array(part.readableBytesView)
        }
        writer.int16(7)
        expected += [0, 7]
        let reply = WireRequestHandler.Reply(writer)
        let frame = reply.frame(allocator: ByteBufferAllocator())!
        #expect(Self.joined(frame) == withUnsafeBytes(of: Int32(expected.count).bigEndian, Array.init) + expected)
        #expect(reply.bytes == expected)
        #expect(reply.count == expected.count)
        // Each large part goes out as its own buffer; everything else shares the written ones.
        let large = sizes.filter { $0 >= WireRequestHandler.Reply.smallestSentAsIs }.count
        #expect(frame.count == 2 * large + 1)
        #expect(frame.allSatisfy { $0.readableBytes > 0 })
    }

    @Test func aBatchSentAsIsIsTheBufferItWasReadIntoNotACopy() {
        let part = Self.part(100_000, seed: 1)
        var writer = WireWriter()
        writer.bytes([part])
        let frame = WireRequestHandler.Reply(writer).frame(allocator: ByteBufferAllocator())!
        #expect(frame.count == 2)
        let sameStorage = frame[1].withUnsafeReadableBytes { sent in part.withUnsafeReadableBytes { read in sent.baseAddress == read.baseAddress } }
        #expect(sameStorage)
    }

    @Test func noReplyHasNoFrame() {
        #expect(WireRequestHandler.Reply(nil).frame(allocator: ByteBufferAllocator()) == nil)
        #expect(WireRequestHandler.Reply(nil).bytes == nil)
    }
}
