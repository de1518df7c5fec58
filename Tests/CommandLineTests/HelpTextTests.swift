import ArgumentParser
import Testing
@testable import fulfillment

/// `--help` text is written as unwrapped paragraphs so ArgumentParser flows them to the
/// terminal's width; a paragraph hard-wrapped in the source comes out broken mid-sentence.
@Suite struct HelpTextTests {
    static func commands(_ command: any ParsableCommand.Type = Fulfillment.self) -> [any ParsableCommand.Type] {
        // Hidden commands (test helpers) and what is under them are not shown to users.
        guard command.configuration.shouldDisplay else { return [] }
        return [command] + command.configuration.subcommands.flatMap { commands($0) }
    }

    @Test func discussionsAreUnwrappedParagraphs() {
        for command in Self.commands() {
            let lines = command.configuration.discussion.split(separator: "\n", omittingEmptySubsequences: false)
            for (previous, line) in zip(lines, lines.dropFirst()) where !line.isEmpty && !line.hasPrefix(" ") {
                // A line of prose follows only a blank line or an introduction ending in ':'.
                #expect(previous.isEmpty || previous.hasSuffix(":"), "\(command._commandName): '\(previous)' is followed by '\(line)' in the same paragraph")
            }
        }
    }

    @Test func everyCommandHasAnAbstract() {
        for command in Self.commands() {
            #expect(!command.configuration.abstract.isEmpty, "\(command._commandName)")
        }
    }
}
