import ArgumentParser
import Cria
import Foundation

/// Options shared by `cria run`, `cria sweep` and `cria validate`.
struct ConfigOptions: ParsableArguments {
    @Argument(help: "An experiment config (YAML), e.g. Experiments/alpaca.yaml.")
    var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key, validated like the file (repeatable).",
                                                           valueName: "KEY=VALUE"))
    var overrides: [String] = []

    func load() throws -> (config: ExperimentConfig, tree: ConfigNode) {
        try ExperimentConfig.load(URL(fileURLWithPath: config), overrides: overrides)
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one experiment (the config's phases, with its repeats) into runs/<experiment>/<date_time>/.",
        discussion: "A sweep section, if any, is ignored; use `cria sweep` for it.")

    @OptionGroup var options: ConfigOptions

    @Flag(name: .shortAndLong, help: "Only the trial lines and the summary (no per-epoch progress).")
    var quiet = false

    func run() throws {
        try reportingErrors {
            let (config, tree) = try options.load()
            var runOptions = ExperimentRunner.Options()
            runOptions.fresh = true
            runOptions.verbose = !quiet
            runOptions.criaVersion = CriaVersion.string
            let runner = try ExperimentRunner(config: config, tree: tree, source: options.config, useSweep: false, options: runOptions)
            let directory = try runner.run()
            print(directory.path)
        }
    }
}
