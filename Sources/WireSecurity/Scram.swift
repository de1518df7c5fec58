import Crypto
import Foundation
import KafkaWire
import _CryptoExtras

/// SCRAM's hash functions (RFC 5802, RFC 7677), as Kafka names them.
public enum ScramMechanism: String, Sendable, CaseIterable {
    case sha256 = "SCRAM-SHA-256"
    case sha512 = "SCRAM-SHA-512"

    func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        switch self {
        case .sha256: Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
        case .sha512: Array(HMAC<SHA512>.authenticationCode(for: data, using: SymmetricKey(data: key)))
        }
    }

    func hash(_ data: [UInt8]) -> [UInt8] {
        switch self {
        case .sha256: Array(SHA256.hash(data: data))
        case .sha512: Array(SHA512.hash(data: data))
        }
    }

    func saltedPassword(_ password: String, salt: [UInt8], iterations: Int) throws -> [UInt8] {
        let (function, size): (KDF.Insecure.PBKDF2.HashFunction, Int) = switch self {
        case .sha256: (.sha256, 32)
        case .sha512: (.sha512, 64)
        }
        let key = try KDF.Insecure.PBKDF2.deriveKey(from: Array(password.utf8), salt: salt, using: function, outputByteCount: size, unsafeUncheckedRounds: iterations)
        return key.withUnsafeBytes { Array($0) }
    }
}

/// What the server keeps of a password: salt, iterations, StoredKey = H(HMAC(salted, "Client
/// Key")) and ServerKey = HMAC(salted, "Server Key"). The password cannot be had back from it.
public struct ScramCredential: Sendable, Equatable, Codable {
    public var salt: String
    public var iterations: Int
    public var storedKey: String
    public var serverKey: String

    enum CodingKeys: String, CodingKey {
        case salt, iterations
        case storedKey = "stored_key"
        case serverKey = "server_key"
    }

    var saltBytes: [UInt8] { Array(Data(base64Encoded: salt) ?? Data()) }
    var storedKeyBytes: [UInt8] { Array(Data(base64Encoded: storedKey) ?? Data()) }
    var serverKeyBytes: [UInt8] { Array(Data(base64Encoded: serverKey) ?? Data()) }

    var isUsable: Bool {
        (4_096...1_000_000).contains(iterations) && saltBytes.count >= 16 && !storedKeyBytes.isEmpty && !serverKeyBytes.isEmpty
    }

    static func derive(password: String, mechanism: ScramMechanism, iterations: Int, salt: [UInt8] = randomBytes(24)) throws -> ScramCredential {
        let salted = try mechanism.saltedPassword(password, salt: salt, iterations: iterations)
        let clientKey = mechanism.hmac(key: salted, Array("Client Key".utf8))
        return ScramCredential(
            salt: Data(salt).base64EncodedString(), iterations: iterations,
            storedKey: Data(mechanism.hash(clientKey)).base64EncodedString(),
            serverKey: Data(mechanism.hmac(key: salted, Array("Server Key".utf8))).base64EncodedString())
    }

    /// Whether `password` is the one this credential was made from (PLAIN).
    func verifies(_ password: String, _ mechanism: ScramMechanism) -> Bool {
        guard let salted = try? mechanism.saltedPassword(password, salt: saltBytes, iterations: iterations) else { return false }
        let clientKey = mechanism.hmac(key: salted, Array("Client Key".utf8))
        return constantTimeEqual(mechanism.hash(clientKey), storedKeyBytes)
    }
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in a.indices { difference |= a[i] ^ b[i] }
    return difference == 0
}

/// The mechanisms over a users file: SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN.
public struct UsersAuthenticator: SaslAuthenticator {
    let file: UsersFile

    public init(_ file: UsersFile) {
        self.file = file
    }

    public var mechanisms: [String] { [ScramMechanism.sha512.rawValue, ScramMechanism.sha256.rawValue, "PLAIN"] }

    public func begin(_ mechanism: String) -> (any SaslExchange)? {
        if mechanism == "PLAIN" { return PlainExchange(file: file) }
        guard let scram = ScramMechanism(rawValue: mechanism) else { return nil }
        return ScramExchange(file: file, mechanism: scram)
    }
}

/// PLAIN (RFC 4616): one token, `authzid NUL user NUL password`, checked against the SCRAM
/// credential. The password crosses the wire as is: use it over TLS.
struct PlainExchange: SaslExchange {
    let file: UsersFile

    mutating func step(_ token: [UInt8]) -> SaslStep {
        let parts = token.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failed("PLAIN token is not authzid NUL user NUL password") }
        let authzid = String(decoding: parts[0], as: UTF8.self)
        let name = String(decoding: parts[1], as: UTF8.self)
        let password = String(decoding: parts[2], as: UTF8.self)
        guard authzid.isEmpty || authzid == name else { return .failed("PLAIN: user \(name) asked to act as \(authzid)") }
        guard let user = file.users[name] else {
            // Spend the same work as for a real user, so timing does not tell who exists.
            _ = try? ScramCredential.derive(password: password, mechanism: .sha256, iterations: 4_096)
            return .failed("PLAIN: unknown user \(name)")
        }
        guard user.scramSHA256.verifies(password, .sha256) else { return .failed("PLAIN: wrong password for \(name)") }
        return .authenticated(WirePrincipal(name: name, grants: user.grants), final: [])
    }
}

/// SCRAM (RFC 5802) from the server's side: client-first → server-first (nonce, salt,
/// iterations) → client-final (proof) → server-final (signature).
struct ScramExchange: SaslExchange {
    let file: UsersFile
    let mechanism: ScramMechanism
    /// The server's half of the nonce: random; fixed only by tests replaying RFC 7677.
    let serverNonce: @Sendable () -> String
    private var pending: Pending?

    struct Pending {
        var name: String
        var user: UsersFile.User?
        var credential: ScramCredential
        var gs2Header: String
        var clientFirstBare: String
        var serverFirst: String
        var nonce: String
    }

    init(file: UsersFile, mechanism: ScramMechanism, serverNonce: @escaping @Sendable () -> String = { Data(randomBytes(18)).base64EncodedString() }) {
        self.file = file
        self.mechanism = mechanism
        self.serverNonce = serverNonce
    }

    mutating func step(_ token: [UInt8]) -> SaslStep {
        guard let message = String(validating: token, as: UTF8.self) else { return .failed("\(mechanism.rawValue): token is not UTF-8") }
        if let pending {
            self.pending = nil
            return final(message, pending)
        }
        return first(message)
    }

    private mutating func first(_ message: String) -> SaslStep {
        // gs2-header: a channel-binding flag (n or y: none is used), an optional authzid.
        let parts = message.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts[0] == "n" || parts[0] == "y" else { return .failed("\(mechanism.rawValue): client-first without a gs2 header") }
        let bare = parts[2]
        let attributes = Self.attributes(bare)
        guard let escaped = attributes.first, escaped.key == "n", attributes.count >= 2, attributes[1].key == "r", !attributes[1].value.isEmpty else {
            return .failed("\(mechanism.rawValue): client-first needs n= and r=")
        }
        // Extensions (tokenauth=true: delegation tokens) are not served.
        guard attributes.count == 2 else { return .failed("\(mechanism.rawValue): extensions are not supported (\(attributes.dropFirst(2).map(\.key)))") }
        let name = escaped.value.replacingOccurrences(of: "=2C", with: ",").replacingOccurrences(of: "=3D", with: "=")
        if parts[1].hasPrefix("a="), String(parts[1].dropFirst(2)) != escaped.value {
            return .failed("\(mechanism.rawValue): user \(name) asked to act as \(parts[1].dropFirst(2))")
        }
        let user = file.users[name]
        // An unknown user gets a made-up salt and fails at the proof, as a wrong password
        // does: the exchange does not tell who exists.
        let credential = user?.credential(mechanism)
            ?? ScramCredential(salt: Data(randomBytes(24)).base64EncodedString(), iterations: 4_096, storedKey: "", serverKey: "")
        let nonce = attributes[1].value + serverNonce()
        let serverFirst = "r=\(nonce),s=\(credential.salt),i=\(credential.iterations)"
        pending = Pending(
            name: name, user: user, credential: credential, gs2Header: parts[0] + "," + parts[1] + ",",
            clientFirstBare: bare, serverFirst: serverFirst, nonce: nonce)
        return .challenge(Array(serverFirst.utf8))
    }

    private func final(_ message: String, _ pending: Pending) -> SaslStep {
        let attributes = Self.attributes(message)
        guard attributes.count >= 3, attributes[0].key == "c", attributes[1].key == "r", let proofAttribute = attributes.last, proofAttribute.key == "p",
              let proof = Data(base64Encoded: proofAttribute.value).map(Array.init),
              let withoutProof = message.range(of: ",p=", options: .backwards).map({ String(message[..<$0.lowerBound]) })
        else { return .failed("\(mechanism.rawValue): client-final needs c=, r= and p=") }
        guard attributes[0].value == Data(pending.gs2Header.utf8).base64EncodedString() else {
            return .failed("\(mechanism.rawValue): channel binding does not match the gs2 header")
        }
        // RFC 5802 wants the nonce back as sent; librdkafka up to 2.0 sends its own nonce
        // in front of it again, and Kafka's broker accepts a nonce that ends with the one it
        // sent. So does this one: the proof covers the message as the client sent it.
        guard attributes[1].value.hasSuffix(pending.nonce) else { return .failed("\(mechanism.rawValue): nonce does not match") }
        guard let user = pending.user else { return .failed("\(mechanism.rawValue): unknown user \(pending.name)") }
        let authMessage = Array("\(pending.clientFirstBare),\(pending.serverFirst),\(withoutProof)".utf8)
        let storedKey = pending.credential.storedKeyBytes
        let signature = mechanism.hmac(key: storedKey, authMessage)
        guard proof.count == signature.count else { return .failed("\(mechanism.rawValue): wrong password for \(pending.name)") }
        let clientKey = zip(proof, signature).map { $0 ^ $1 }
        guard constantTimeEqual(mechanism.hash(clientKey), storedKey) else { return .failed("\(mechanism.rawValue): wrong password for \(pending.name)") }
        let serverSignature = mechanism.hmac(key: pending.credential.serverKeyBytes, authMessage)
        return .authenticated(
            WirePrincipal(name: pending.name, grants: user.grants), final: Array("v=\(Data(serverSignature).base64EncodedString())".utf8))
    }

    /// `k=v,k=v` in order; a value may hold '=' (base64), never ','.
    static func attributes(_ text: String) -> [(key: String, value: String)] {
        text.split(separator: ",", omittingEmptySubsequences: false).map { part in
            guard let equals = part.firstIndex(of: "=") else { return (String(part), "") }
            return (String(part[..<equals]), String(part[part.index(after: equals)...]))
        }
    }
}
