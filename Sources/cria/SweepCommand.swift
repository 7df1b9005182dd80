import ArgumentParser
import Cria
import Foundation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a config's sweep: every trial × repeat, resumable and shardable.",
        discussion: """
            Running the same command again after an interruption (Ctrl-C, kill -9) continues the \
            latest unfinished experiment directory with the same config: finished trials are kept, \
            the interrupted one restarts. Shards (--shard i/n) run every n-th trial; give them one \
            --stamp so they share a directory, then `cria report` merges them.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("Run every n-th trial, starting at i (0-based).", valueName: "i/n"))
    var shard: String?

    @Option(help: "Run at most N trials.")
    var limit: Int?

    @Flag(name: .customLong("dry-run"), help: "List the trials without running them.")
    var dryRun = false

    @Option(help: "Name of the experiment directory (default: a new date_time, or the one being resumed).")
    var stamp: String?

    @Flag(name: .customLong("new"), help: "Start a new experiment directory instead of resuming.")
    var fresh = false

    @Flag(name: .shortAndLong, help: "Only the trial lines and the summary (no per-epoch progress).")
    var quiet = false

    func validate() throws {
        if let shard {
            let parts = shard.split(separator: "/").compactMap { Int($0) }
            guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
                throw ValidationError("--shard \(shard): expected i/n with 0 ≤ i < n, e.g. 0/4")
            }
        }
        if let limit, limit < 0 { throw ValidationError("--limit must be at least 0") }
    }

    func run() throws {
        try reportingErrors {
            let (config, tree) = try options.load()
            var runOptions = ExperimentRunner.Options()
            if let shard {
                let parts = shard.split(separator: "/").compactMap { Int($0) }
                runOptions.shard = (parts[0], parts[1])
            }
            runOptions.limit = limit
            runOptions.dryRun = dryRun
            runOptions.stamp = stamp
            runOptions.fresh = fresh
            runOptions.verbose = !quiet
            runOptions.criaVersion = CriaVersion.string
            if config.sweep == nil && !dryRun {
                FileHandle.standardError.write(Data("note: \(options.config) has no sweep section; running its one trial (× repeats)\n".utf8))
            }
            let runner = try ExperimentRunner(config: config, tree: tree, source: options.config, useSweep: true, options: runOptions)
            // Ctrl-C leaves the current trial without summary.json; say how to pick up from there.
            signal(SIGINT) { _ in
                let text: StaticString = "\ninterrupted: run the same command again to resume (finished trials are kept)\n"
                text.withUTF8Buffer { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
                _exit(130)
            }
            if dryRun {
                print(runner.listing(), terminator: "")
                return
            }
            print(try runner.run().path)
        }
    }
}
