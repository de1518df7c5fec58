import ArgumentParser
import Foundation
import KafkaWire
import WireSecurity

/// `fulfillment users`: the SASL users file of the Kafka listener (`broker --users FILE`).
struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Manage the SASL users of the Kafka listener (broker --users FILE).",
        discussion: """
            The file keeps salted SCRAM-SHA-256 and SCRAM-SHA-512 credentials and each user's topic grants, never a password; it is written readable by its owner only. Passwords are read from stdin, never from the command line. A broker reads the file when it starts: restart it after a change.
            """,
        subcommands: [Add.self, Remove.self, List.self])

    struct UsersFileOption: ParsableArguments {
        @Option(help: ArgumentHelp("The users file.", valueName: "file")) var users: String
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user, or replace its password and grants; the password is read from stdin.",
            discussion: """
                Examples:
                  printf '%s\\n' "$STOREFRONT_PASSWORD" | fulfillment users add storefront --users users.json --produce orders --produce orders.priority
                  fulfillment users add ops --users users.json --consume '*' --admin    (asks for the password on a terminal)

                Topic patterns: a name, '*' for every topic, or a prefix ending in '*' (orders*). Without --produce and --consume a user may touch no topic.
                """)

        @Argument(help: "The user's name (what clients give as sasl.username).") var name: String
        @OptionGroup var file: UsersFileOption
        @Option(help: ArgumentHelp("A topic (or pattern) the user may produce to; repeat for more.", valueName: "topic")) var produce: [String] = []
        @Option(help: ArgumentHelp("A topic (or pattern) the user may read (fetch, list, commit and fetch offsets); repeat for more.", valueName: "topic")) var consume: [String] = []
        @Flag(help: "The user may create and delete topics.") var admin = false
        @Option(help: "PBKDF2 iterations of the SCRAM credentials (4096 or more).") var iterations = 8_192

        func run() async throws {
            try await reportingFailures {
                if isatty(STDIN_FILENO) != 0 { writeStderr("password for \(name) (one line; it is not echoed back anywhere):") }
                guard let line = readLine(strippingNewline: true) else { throw CommandFailure(message: "no password on stdin: pipe it in, one line") }
                do {
                    var users = try UsersFile.load(file.users, missingIsEmpty: true)
                    let existed = users.users[name] != nil
                    try users.set(name, password: line, grants: TopicGrants(produce: produce, consume: consume, admin: admin), iterations: iterations)
                    try users.save(file.users)
                    let may = [
                        produce.isEmpty ? nil : "produce to \(produce.joined(separator: ", "))",
                        consume.isEmpty ? nil : "read \(consume.joined(separator: ", "))",
                        admin ? "create and delete topics" : nil,
                    ].compactMap { $0 }
                    print("\(existed ? "updated" : "added") \(name) in \(file.users): may \(may.isEmpty ? "touch no topic" : may.joined(separator: "; "))")
                } catch let error as UsersFileError {
                    throw CommandFailure(message: error.description)
                }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user.")
        @Argument(help: "The user's name.") var name: String
        @OptionGroup var file: UsersFileOption

        func run() async throws {
            try await reportingFailures {
                do {
                    var users = try UsersFile.load(file.users)
                    guard users.users.removeValue(forKey: name) != nil else { throw CommandFailure(message: "no user \(name) in \(file.users)") }
                    try users.save(file.users)
                    print("removed \(name) from \(file.users)")
                } catch let error as UsersFileError {
                    throw CommandFailure(message: error.description)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the users and their grants (no credentials).")
        @OptionGroup var file: UsersFileOption

        func run() async throws {
            try await reportingFailures {
                do {
                    let users = try UsersFile.load(file.users)
                    for (name, user) in users.users.sorted(by: { $0.key < $1.key }) {
                        print("\(name)\tproduce: \(user.grants.produce.joined(separator: ",").nonEmpty ?? "-")\tconsume: \(user.grants.consume.joined(separator: ",").nonEmpty ?? "-")\(user.grants.admin ? "\tadmin" : "")")
                    }
                } catch let error as UsersFileError {
                    throw CommandFailure(message: error.description)
                }
            }
        }
    }
}

private extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
