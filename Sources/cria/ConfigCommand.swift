import ArgumentParser
import Cria
import Foundation

/// `cria config reference`: the config keys, from the one table the decoder uses.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Describe the experiment config's keys.",
        subcommands: [Reference.self])

    struct Reference: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reference",
            abstract: "Print the reference tables of every config key (path, type and range, default, meaning).",
            discussion: """
                The tables come from ConfigKeys, the table the config decoder reads. With --update FILE, \
                the tables between `<!-- config-keys SECTION -->` and `<!-- /config-keys -->` in FILE \
                are rewritten in place (Experiments/README.md holds them).
                """)

        @Option(help: ArgumentHelp("Rewrite the marked tables of this markdown file.", valueName: "FILE"))
        var update: String?

        func run() throws {
            try reportingErrors {
                guard let update else {
                    print(ConfigReference.markdown(), terminator: "")
                    return
                }
                let url = URL(fileURLWithPath: update)
                let text: String
                do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw CriaError("\(update): cannot read") }
                let updated: String
                do { updated = try ConfigReference.update(text) } catch { throw CriaError("\(update): \(error)") }
                if updated != text { try AtomicFile.write(updated, to: url) }
                print("\(update): \(ConfigReference.markedSections(updated).count) table(s)\(updated == text ? ", already up to date" : " rewritten")")
            }
        }
    }
}
