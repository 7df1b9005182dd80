import ArgumentParser
import Cria
import Foundation

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check an experiment config (and --set overrides) without running it.",
        discussion: "Errors name the key path and the line, e.g. `phases[1].fine_tune_at: line 23: must be between 0 and 154`.")

    @OptionGroup var options: ConfigOptions

    @Flag(help: "Print the resolved config (every default filled in).")
    var resolved = false

    func run() throws {
        try reportingErrors {
            let (config, tree) = try options.load()
            let trials = try SweepPlanner.trials(tree: tree, config: config, source: options.config)
            if resolved {
                print(ConfigEmitter.yaml(config.resolvedTree(criaVersion: CriaVersion.string, gitCommit: RunInfo.gitCommit)), terminator: "")
            }
            let epochs = config.phases.reduce(0) { $0 + $1.epochs }
            print("\(options.config): valid: experiment \(config.name), \(config.phases.count) phase(s), \(epochs) epoch(s), "
                  + "\(trials.count) trial(s)\(config.sweep.map { " (\($0.method.rawValue) sweep over \($0.parameters.map(\.path.description).joined(separator: ", ")))" } ?? "")")
        }
    }
}
