import Foundation
@testable import KafkaWire
import Testing
@testable import WireSecurity

/// The SASL exchanges as plain state machines, without a socket: SCRAM-SHA-256 replays
/// RFC 7677's example byte for byte; wrong passwords, unknown users, a changed nonce or
/// channel binding fail; PLAIN checks against the SCRAM credential; hostile tokens fail
/// cleanly.
@Suite struct SaslExchangeTests {
    static let grants = TopicGrants(produce: ["orders"], consume: [], admin: false)

    /// RFC 7677's user: "user", password "pencil", its salt and 4,096 iterations.
    static func rfcUsers() throws -> UsersFile {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let sha256 = try ScramCredential.derive(password: "pencil", mechanism: .sha256, iterations: 4_096, salt: salt)
        let sha512 = try ScramCredential.derive(password: "pencil", mechanism: .sha512, iterations: 4_096, salt: salt)
        return UsersFile(users: ["user": .init(scramSHA256: sha256, scramSHA512: sha512, grants: grants)])
    }

    @Test func scramSHA256ReplaysRFC7677() throws {
        var exchange = ScramExchange(file: try Self.rfcUsers(), mechanism: .sha256, serverNonce: { "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" })
        guard case .challenge(let first) = exchange.step(Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8)) else {
            Issue.record("no challenge")
            return
        }
        #expect(String(decoding: first, as: UTF8.self) == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        guard case .authenticated(let principal, let serverFinal) = exchange.step(Array(final.utf8)) else {
            Issue.record("the RFC's proof was refused")
            return
        }
        #expect(principal == WirePrincipal(name: "user", grants: Self.grants))
        #expect(String(decoding: serverFinal, as: UTF8.self) == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    /// A client computing its proof the RFC's way, for any password.
    static func clientFinal(_ mechanism: ScramMechanism, password: String, clientFirstBare: String, serverFirst: String, gs2: String = "n,,") throws -> String {
        let fields = Dictionary(uniqueKeysWithValues: ScramExchange.attributes(serverFirst).map { ($0.key, $0.value) })
        let salted = try mechanism.saltedPassword(password, salt: Array(Data(base64Encoded: fields["s"]!)!), iterations: Int(fields["i"]!)!)
        let clientKey = mechanism.hmac(key: salted, Array("Client Key".utf8))
        let withoutProof = "c=\(Data(gs2.utf8).base64EncodedString()),r=\(fields["r"]!)"
        let signature = mechanism.hmac(key: mechanism.hash(clientKey), Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8))
        return withoutProof + ",p=" + Data(zip(clientKey, signature).map { $0 ^ $1 }).base64EncodedString()
    }

    static func login(_ file: UsersFile, _ mechanism: ScramMechanism, user: String, password: String, tamper: (String) -> String = { $0 }) throws -> SaslStep {
        var exchange = ScramExchange(file: file, mechanism: mechanism)
        let bare = "n=\(user),r=client-nonce-123"
        guard case .challenge(let first) = exchange.step(Array("n,,\(bare)".utf8)) else { return .failed("no challenge") }
        let final = try clientFinal(mechanism, password: password, clientFirstBare: bare, serverFirst: String(decoding: first, as: UTF8.self))
        return exchange.step(Array(tamper(final).utf8))
    }

    @Test(arguments: ScramMechanism.allCases) func scramAcceptsOnlyTheRightPassword(_ mechanism: ScramMechanism) throws {
        var file = UsersFile()
        try file.set("storefront", password: "s3cret, with = signs", grants: Self.grants, iterations: 4_096)
        guard case .authenticated(let principal, let final) = try Self.login(file, mechanism, user: "storefront", password: "s3cret, with = signs") else {
            Issue.record("the right password was refused")
            return
        }
        #expect(principal.name == "storefront" && String(decoding: final, as: UTF8.self).hasPrefix("v="))
        func refused(_ step: SaslStep) -> Bool { if case .failed = step { true } else { false } }
        #expect(refused(try Self.login(file, mechanism, user: "storefront", password: "s3cret, with = sign")))
        #expect(refused(try Self.login(file, mechanism, user: "nobody", password: "s3cret, with = signs")), "an unknown user gets a salt and fails at the proof")
        #expect(refused(try Self.login(file, mechanism, user: "storefront", password: "s3cret, with = signs") { $0.replacingOccurrences(of: "r=client-nonce-123", with: "r=other-nonce-123") }))
        #expect(refused(try Self.login(file, mechanism, user: "storefront", password: "s3cret, with = signs") { $0.replacingOccurrences(of: "c=biws", with: "c=eSws") }))
    }

    @Test func plainChecksThePasswordAgainstTheCredential() throws {
        var file = UsersFile()
        try file.set("ops", password: "pa ss", grants: Self.grants, iterations: 4_096)
        func plain(_ token: String) -> SaslStep {
            var exchange = PlainExchange(file: file)
            return exchange.step(Array(token.utf8))
        }
        if case .authenticated(let principal, _) = plain("\0ops\0pa ss") { #expect(principal.name == "ops") } else { Issue.record("refused") }
        if case .authenticated = plain("ops\0ops\0pa ss") {} else { Issue.record("authzid equal to the user is fine") }
        for token in ["\0ops\0pa s", "\0nobody\0pa ss", "admin\0ops\0pa ss", "ops", ""] {
            if case .failed = plain(token) {} else { Issue.record("\(token.debugDescription) was accepted") }
        }
    }

    @Test func hostileTokensFailWithoutTrapping() throws {
        var file = UsersFile()
        try file.set("u", password: "p", grants: Self.grants, iterations: 4_096)
        var generator = SystemRandomNumberGenerator()
        let shapes = ["n,,", "n,,n=", "n,,n=u", "n,,n=u,r=", "p=tls,,n=u,r=x", "n,,n=u,r=x,tokenauth=true", ",,,", "n,a=x,n=u,r=x", "c=biws,r=,p=", "="]
        for round in 0..<3_000 {
            var token = Array(shapes[round % shapes.count].utf8)
            for _ in 0..<Int.random(in: 0...8, using: &generator) { token.append(UInt8.random(in: 0...255, using: &generator)) }
            for mechanism in ScramMechanism.allCases {
                var exchange = ScramExchange(file: file, mechanism: mechanism)
                if case .challenge = exchange.step(token) { _ = exchange.step(Array(token.reversed())) }
            }
            var plain = PlainExchange(file: file)
            _ = plain.step(token)
        }
    }

    @Test func grantsMatchNamesStarsAndPrefixes() {
        let grants = TopicGrants(produce: ["orders", "audit.*"], consume: ["*"], admin: false)
        #expect(grants.mayProduce("orders") && grants.mayProduce("audit.2026") && !grants.mayProduce("orders.priority") && !grants.mayProduce("audit"))
        #expect(grants.mayConsume("anything"))
        #expect(!TopicGrants(produce: [], consume: [], admin: false).mayConsume("orders"))
    }
}
