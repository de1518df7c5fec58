import Testing
@testable import SagaDomain

/// Strings take a fast path when all their bytes are ASCII; any other string must still be
/// accepted exactly when it is valid UTF-8, and read as the standard library reads it.
@Suite struct JSONStringTests {
    @Test func stringsAreAcceptedExactlyWhenTheyAreValidUTF8() {
        var generator = SystemRandomNumberGenerator()
        // Bytes that make valid and invalid sequences: ASCII, lead bytes, continuations,
        // overlong and surrogate encodings, bytes never valid in UTF-8.
        let palette: [UInt8] = [0x41, 0x7A, 0x20, 0x7F, 0xC0, 0xC2, 0xC3, 0xA9, 0x80, 0xBF, 0xE0, 0xED, 0xA0, 0xEF, 0xF0, 0x90, 0xF4, 0xF5, 0xFF]
        for _ in 0..<20_000 {
            let body = (0..<Int.random(in: 0...8, using: &generator)).map { _ in palette.randomElement(using: &generator)! }
            let document = [UInt8(ascii: "\"")] + body + [UInt8(ascii: "\"")]
            let expected = String(validating: body, as: UTF8.self)
            let parsed = try? JSONValue.parse(document)
            if let expected {
                #expect(parsed == .string(expected), "\(body)")
            } else {
                #expect(parsed == nil, "\(body) is not UTF-8 and was accepted")
            }
        }
    }

    @Test func asciiAndNonASCIIKeysAndValuesRoundTrip() throws {
        let document = try JSONValue.parse(Array(#"{"name":"Zoë","city":"Köln","id":"o-1","note":"a\"b"}"#.utf8))
        #expect(document["name"] == .string("Zoë"))
        #expect(document["city"] == .string("Köln"))
        #expect(document["id"] == .string("o-1"))
        #expect(document["note"] == .string("a\"b"))
    }
}
