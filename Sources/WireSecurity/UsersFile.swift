import Foundation
import KafkaWire

/// The users SASL accepts, in a JSON file only its owner reads: per user, salted SCRAM
/// credentials for SHA-256 and SHA-512 (never the password) and the topics it may touch.
/// `fulfillment users add` writes it; `broker --users FILE` reads it at start-up.
public struct UsersFile: Sendable, Equatable, Codable {
    public struct User: Sendable, Equatable, Codable {
        public var scramSHA256: ScramCredential
        public var scramSHA512: ScramCredential
        public var grants: TopicGrants

        enum CodingKeys: String, CodingKey {
            case scramSHA256 = "scram_sha_256"
            case scramSHA512 = "scram_sha_512"
            case grants
        }

        func credential(_ mechanism: ScramMechanism) -> ScramCredential {
            switch mechanism {
            case .sha256: scramSHA256
            case .sha512: scramSHA512
            }
        }
    }

    public var users: [String: User]

    public init(users: [String: User] = [:]) {
        self.users = users
    }

    /// Reads `path`; a missing file is an empty one only when `missingIsEmpty` (users add).
    public static func load(_ path: String, missingIsEmpty: Bool = false) throws -> UsersFile {
        guard FileManager.default.fileExists(atPath: path) else {
            if missingIsEmpty { return UsersFile() }
            throw UsersFileError("--users \(path): no such file (create it with `fulfillment users add NAME --users \(path)`)")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw UsersFileError("--users \(path): cannot be read (\(error.localizedDescription))")
        }
        do {
            let file = try JSONDecoder().decode(UsersFile.self, from: data)
            for (name, user) in file.users {
                guard UsersFile.isValidName(name) else { throw UsersFileError("--users \(path): user name \"\(name)\" is not allowed") }
                for credential in [user.scramSHA256, user.scramSHA512] {
                    guard credential.isUsable else { throw UsersFileError("--users \(path): user \(name) has a damaged credential") }
                }
            }
            return file
        } catch let error as UsersFileError {
            throw error
        } catch {
            throw UsersFileError("--users \(path): not a users file (\(error))")
        }
    }

    /// Writes the file whole (a temporary file renamed over it), readable by its owner only.
    public func save(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw UsersFileError("cannot write \(temporary)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw UsersFileError("cannot replace \(path): \(reason)")
        }
    }

    /// Adds or replaces a user, deriving both credentials from `password` with a fresh salt.
    public mutating func set(_ name: String, password: String, grants: TopicGrants, iterations: Int) throws {
        guard Self.isValidName(name) else {
            throw UsersFileError("user name \"\(name)\" is not allowed: 1-255 characters, no control characters, commas or '='")
        }
        guard !password.isEmpty else { throw UsersFileError("the password is empty") }
        guard (4_096...1_000_000).contains(iterations) else { throw UsersFileError("--iterations must be between 4096 (SCRAM's minimum) and 1000000") }
        users[name] = User(
            scramSHA256: try ScramCredential.derive(password: password, mechanism: .sha256, iterations: iterations),
            scramSHA512: try ScramCredential.derive(password: password, mechanism: .sha512, iterations: iterations),
            grants: grants)
    }

    /// Printable, without commas or '=' (SCRAM escapes them, and a name is said in logs).
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && !name.unicodeScalars.contains { $0.properties.generalCategory == .control || $0 == "," || $0 == "=" }
    }
}

public struct UsersFileError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
