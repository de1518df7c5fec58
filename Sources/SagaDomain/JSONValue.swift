/// A parsed JSON document. The saga parses every order several times per second per core,
/// and Foundation's `Codable` decoding cost more than everything else together, so orders
/// go through this small parser and a hand-written mapping instead.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members in document order (duplicates kept; lookups take the first).
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public struct ParseError: Error, Sendable {
        public var offset: Int
        public var message: String
    }

    /// Parses a whole document (RFC 8259; nesting limited to `maxDepth`).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(ParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(ParseError) -> JSONValue in
            var parser = JSONParser(bytes: buffer, maxDepth: maxDepth)
            parser.skipWhitespace()
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.position == buffer.count else { throw ParseError(offset: parser.position, message: "unexpected data after the JSON value") }
            return value
        }
    }
}

extension JSONValue {
    /// Parses a whole document exactly as `parse` does (the same documents are accepted and
    /// refused, with the same errors), but when it is an object keeps only the top-level
    /// members named in `keys`: the rest are checked and passed over without being built.
    /// For a bulk loader that needs an order's id and lane from each line, not all of it.
    public static func parse(_ bytes: [UInt8], keepingMembers keys: Set<String>, maxDepth: Int = 64) throws(ParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(ParseError) -> JSONValue in
            var parser = JSONParser(bytes: buffer, maxDepth: maxDepth)
            parser.skipWhitespace()
            let value: JSONValue
            if parser.position < buffer.count, buffer[parser.position] == UInt8(ascii: "{"), maxDepth > 0 {
                value = try parser.object(depth: 0, keeping: keys)
            } else {
                value = try parser.value(depth: 0)
            }
            parser.skipWhitespace()
            guard parser.position == buffer.count else { throw ParseError(offset: parser.position, message: "unexpected data after the JSON value") }
            return value
        }
    }
}

extension JSONValue {
    /// This object with only the members named in `keys` (in order, duplicates kept); any
    /// other value as it is. What `parse(_:keepingMembers:)` returns for the same bytes.
    public func keepingMembers(_ keys: Set<String>) -> JSONValue {
        guard case .object(let members) = self else { return self }
        return .object(members.filter { keys.contains($0.key) })
    }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var position = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func fail(_ message: String) -> JSONValue.ParseError { JSONValue.ParseError(offset: position, message: message) }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws(JSONValue.ParseError) -> JSONValue {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        guard position < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return .number(try number())
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONValue.ParseError) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw fail("unexpected end of input") }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
        for i in 0..<count where bytes[position + i] != expected[i] { throw fail("invalid literal") }
        position += count
    }

    /// An object; with `keys`, only the members named there are built, and the others are
    /// checked and passed over (see `parse(_:keepingMembers:)`).
    mutating func object(depth: Int, keeping keys: Set<String>? = nil) throws(JSONValue.ParseError) -> JSONValue {
        position += 1
        var members: [(key: String, value: JSONValue)] = []
        if keys == nil { members.reserveCapacity(8) }  // an order's objects: growing 1, 2, 4, 8 cost 3 % of a bulk load
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            // An object kept whole or in part builds its keys; one passed over only checks them.
            let key: String?
            if keys?.isEmpty == true {
                try skipString()
                key = nil
            } else {
                key = try string()
            }
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
            skipWhitespace()
            if let key, keys?.contains(key) ?? true {
                members.append((key, try value(depth: depth + 1)))
            } else {
                try skipValue(depth: depth + 1)
            }
            skipWhitespace()
            guard position < bytes.count else { throw fail("unexpected end of input in an object") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
            position += 1
            return .object(members)
        }
    }

    /// Checks one value as `value(depth:)` would, with the same errors, without building it.
    /// Strings of plain ASCII (an object's keys too) are only scanned, containers keep nothing;
    /// anything rarer (an escape, a non-ASCII byte, a number, a literal) goes
    /// through the building code and is dropped.
    mutating func skipValue(depth: Int) throws(JSONValue.ParseError) {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        guard position < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            _ = try object(depth: depth, keeping: [])
        case UInt8(ascii: "["):
            _ = try array(depth: depth, keepingElements: false)
        case UInt8(ascii: "\""):
            try skipString()
        default:
            _ = try value(depth: depth)
        }
    }

    /// Passes over a string of printable ASCII without making it; any other string is read
    /// by `string()`, so its escapes and UTF-8 are checked exactly as when it is kept.
    mutating func skipString() throws(JSONValue.ParseError) {
        let start = position
        position += 1
        while position < bytes.count {
            let c = bytes[position]
            if c == UInt8(ascii: "\"") {
                position += 1
                return
            }
            if c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { break }
            position += 1
        }
        position = start
        _ = try string()
    }

    /// An array; without `keepingElements` its elements are checked and passed over, and it
    /// comes back empty.
    mutating func array(depth: Int, keepingElements: Bool = true) throws(JSONValue.ParseError) -> JSONValue {
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            if keepingElements {
                elements.append(try value(depth: depth + 1))
            } else {
                try skipValue(depth: depth + 1)
            }
            skipWhitespace()
            guard position < bytes.count else { throw fail("unexpected end of input in an array") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
            position += 1
            return .array(elements)
        }
    }

    mutating func string() throws(JSONValue.ParseError) -> String {
        position += 1
        let start = position
        var ascii = true
        // Fast path: no escapes.
        while position < bytes.count {
            let c = bytes[position]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<position])
                position += 1
                // `String(validating:)` instantiates generic metadata on every call (a third of
                // `produce`'s CPU in a profile); ASCII needs no validation.
                if ascii { return String(decoding: slice, as: UTF8.self) }
                guard let text = String(validating: slice, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                return text
            }
            if c >= 0x80 { ascii = false }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in a string") }
            position += 1
        }
        var scalars = [UInt8](bytes[start..<position])
        while position < bytes.count {
            let c = bytes[position]
            position += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let text = String(validating: scalars, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { throw fail("unexpected end of input in a string") }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "\""): scalars.append(0x22)
                case UInt8(ascii: "\\"): scalars.append(0x5C)
                case UInt8(ascii: "/"): scalars.append(0x2F)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard position + 6 <= bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in a string")
                        }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw fail("unpaired surrogate in a string")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid unicode escape") }
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw fail("invalid escape in a string")
                }
            default:
                if c < 0x20 { throw fail("control character in a string") }
                scalars.append(c)
            }
        }
        throw fail("unterminated string")
    }

    mutating func hex4() throws(JSONValue.ParseError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw fail("truncated unicode escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            position += 1
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw fail("invalid hex digit in a unicode escape")
            }
            value = value << 4 | digit
        }
        return value
    }

    mutating func number() throws(JSONValue.ParseError) -> Double {
        let start = position
        if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count, (0x30...0x39).contains(bytes[position]) else { throw fail("invalid value") }
        if bytes[position] == 0x30 {
            position += 1
        } else {
            while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard position < bytes.count, (0x30...0x39).contains(bytes[position]) else { throw fail("invalid number") }
            while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard position < bytes.count, (0x30...0x39).contains(bytes[position]) else { throw fail("invalid number") }
            while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
        }
        // Fast path: a plain integer of up to 15 digits is exact as a Double (and cannot
        // overflow the accumulator: longer ones, such as a 31-digit quantity, take the slow path).
        var digits = 0
        var integer: Int64 = 0
        var negative = false
        var plain = true
        for i in start..<position {
            let c = bytes[i]
            if c == UInt8(ascii: "-") { negative = true; continue }
            guard (0x30...0x39).contains(c), digits < 15 else { plain = false; break }
            integer = integer * 10 + Int64(c - 0x30)
            digits += 1
        }
        if plain { return Double(negative ? -integer : integer) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw fail("number out of range") }
        return value
    }
}

/// Writes JSON text: strings escaped per RFC 8259, numbers in their shortest round-trip form.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 512) { bytes.reserveCapacity(capacity) }

    public mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public mutating func string(_ text: String) {
        bytes.append(0x22)
        for c in text.utf8 {
            switch c {
            case 0x22: bytes.append(0x5C); bytes.append(0x22)
            case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
            case 0x0A: bytes.append(0x5C); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(0x5C); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(0x5C); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
            default: bytes.append(c)
            }
        }
        bytes.append(0x22)
    }

    public mutating func number(_ value: Double) {
        if value == value.rounded(), abs(value) < 1e15 {
            bytes.append(contentsOf: String(Int64(value)).utf8)
        } else {
            bytes.append(contentsOf: value.description.utf8)
        }
    }

    public mutating func number(_ value: Int) { bytes.append(contentsOf: String(value).utf8) }
}
