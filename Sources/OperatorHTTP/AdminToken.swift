import Foundation

/// The bearer token that admin writes need (`Authorization: Bearer …`): read from
/// `--admin-token-file`, or generated at start and written to a file only its owner can read
/// (for the CLI and the console); never printed, so it never lands in a log.
public struct AdminToken: Sendable {
    let value: [UInt8]

    public init(_ text: String) { value = Array(text.utf8) }

    /// 32 random bytes as hex.
    public static func generate() -> AdminToken {
        var generator = SystemRandomNumberGenerator()
        return AdminToken((0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined())
    }

    /// The first line of `path`, which must not be empty.
    public static func load(path: String) throws -> AdminToken {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AdminTokenError(message: "cannot read the admin token file \(path)")
        }
        let line = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        guard line.count >= 16 else { throw AdminTokenError(message: "the admin token in \(path) must be at least 16 characters on its first line") }
        return AdminToken(line)
    }

    public var text: String { String(decoding: value, as: UTF8.self) }

    /// Writes it where only this user can read it.
    public func save(path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AdminTokenError(message: "cannot write the admin token to \(path)") }
        defer { close(fd) }
        let bytes = value + [UInt8(ascii: "\n")]
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Whether an `Authorization` header carries this token; compares in constant time.
    public func accepts(authorization: String?) -> Bool {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return false }
        let offered = Array(authorization.utf8.dropFirst("Bearer ".utf8.count))
        guard offered.count == value.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(offered, value) { difference |= a ^ b }
        return difference == 0
    }
}

public struct AdminTokenError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
