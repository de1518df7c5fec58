import SagaDomain

/// JSON text for people: two-space indents, members in the order given.
enum PrettyJSON {
    static func text(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: "", into: &out)
        return out + "\n"
    }

    static func write(_ value: JSONValue, indent: String, into out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n):
            var writer = JSONWriter(capacity: 24)
            writer.number(n)
            out += String(decoding: writer.bytes, as: UTF8.self)
        case .string(let s):
            var writer = JSONWriter(capacity: s.utf8.count + 2)
            writer.string(s)
            out += String(decoding: writer.bytes, as: UTF8.self)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            if items.allSatisfy({ if case .string = $0 { true } else { false } }) {
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += ", " }
                    write(item, indent: indent, into: &out)
                }
                out += "]"
                return
            }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += indent + "  "
                write(item, indent: indent + "  ", into: &out)
                out += i == items.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            for (i, member) in members.enumerated() {
                out += indent + "  "
                write(.string(member.key), indent: indent, into: &out)
                out += ": "
                write(member.value, indent: indent + "  ", into: &out)
                out += i == members.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        }
    }
}
