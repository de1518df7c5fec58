import Foundation

/// Rewrites the stores' SQL (written for SQLite) for PostgreSQL, once per statement text.
/// The stores keep to a small common subset; what differs is spelled out here:
/// - `?` placeholders become `$1, $2, ...` (outside string literals);
/// - `INSERT OR IGNORE INTO ...` becomes `INSERT INTO ... ON CONFLICT DO NOTHING`;
/// - in `CREATE TABLE`, `INTEGER` becomes `BIGINT` (SQLite's integers are 64-bit), `BLOB`
///   `BYTEA` and `REAL` `DOUBLE PRECISION`;
/// - the column name `offset` (a reserved word in PostgreSQL) is quoted;
/// - `rowid` (insertion order of an append-only table) becomes `ctid`;
/// - `CREATE VIEW IF NOT EXISTS` (which PostgreSQL lacks) becomes `CREATE OR REPLACE VIEW`.
public enum PostgresDialect {
    public static func translate(_ sql: String) -> String {
        var text = sql
        text = text.replacingAll("CREATE VIEW IF NOT EXISTS", with: "CREATE OR REPLACE VIEW")
        var ignoreConflicts = false
        if text.contains("INSERT OR IGNORE INTO") {
            text = text.replacingAll("INSERT OR IGNORE INTO", with: "INSERT INTO")
            ignoreConflicts = true
        }
        if text.contains("CREATE TABLE") {
            text = replacingWord("INTEGER", with: "BIGINT", in: text)
            text = replacingWord("BLOB", with: "BYTEA", in: text)
            text = replacingWord("REAL", with: "DOUBLE PRECISION", in: text)
        }
        text = replacingWord("offset", with: "\"offset\"", in: text)
        text = replacingWord("rowid", with: "ctid", in: text)
        text = numberingPlaceholders(text)
        if ignoreConflicts {
            var trimmed = Substring(text)
            while let last = trimmed.last, last == ";" || last.isWhitespace { trimmed.removeLast() }
            text = trimmed + " ON CONFLICT DO NOTHING"
        }
        return text
    }

    static func numberingPlaceholders(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var inLiteral = false
        var n = 0
        for c in sql {
            if c == "'" { inLiteral.toggle() }
            if c == "?" && !inLiteral {
                n += 1
                out += "$\(n)"
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Replaces `word` where it stands as a whole identifier (not inside a longer name, a
    /// quoted name or a string literal).
    static func replacingWord(_ word: String, with replacement: String, in sql: String) -> String {
        let chars = Array(sql)
        let target = Array(word)
        var out = ""
        var i = 0
        var inLiteral = false
        var inQuoted = false
        func isIdentifier(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }
        while i < chars.count {
            let c = chars[i]
            if c == "'" && !inQuoted { inLiteral.toggle() }
            if c == "\"" && !inLiteral { inQuoted.toggle() }
            if !inLiteral && !inQuoted, i + target.count <= chars.count, Array(chars[i..<(i + target.count)]) == target,
                i == 0 || !isIdentifier(chars[i - 1]),
                i + target.count == chars.count || !isIdentifier(chars[i + target.count])
            {
                out += replacement
                i += target.count
                continue
            }
            out.append(c)
            i += 1
        }
        return out
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
