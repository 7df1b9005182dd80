import CriaCore
import Foundation

/// A Jupyter notebook (nbformat 4.5) telling a run's story: config, dataset,
/// learning curves, summary tables, and Python cells that re-plot from the
/// CSV logs.
///
/// The figures are stored as `display_data` outputs (`image/svg+xml`), so
/// the curves show on GitHub or in Jupyter without running anything; running
/// the code cells redraws them with pandas and matplotlib from `metrics.csv`.
/// Paths in the code are relative to the notebook when it sits beside the run
/// (Jupyter's working directory is the notebook's folder), absolute otherwise.
public enum NotebookExport {
    /// Exports a trial directory, or an experiment directory (featuring its best trial).
    public static func export(runDirectory: URL, to output: URL) throws {
        try AtomicFile.write(notebookJSON(runDirectory: runDirectory, output: output), to: output)
    }

    static func notebookJSON(runDirectory: URL, output: URL) throws -> String {
        let notebook = try build(runDirectory: runDirectory.standardizedFileURL, output: output.standardizedFileURL)
        let data = try JSONSerialization.data(withJSONObject: notebook.anyValue, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func build(runDirectory: URL, output: URL) throws -> JSONValue {
        let isTrial = TrialSummary.isTrialDirectory(runDirectory)
        let sweep = try ExperimentReport.SweepInfo(experimentDirectory: isTrial ? runDirectory.deletingLastPathComponent() : runDirectory)
        let (loaded, unfinished) = try TrialSummary.loadAll(under: runDirectory, depth: isTrial ? 0 : 2)
        let trials = ExperimentReport.rank(loaded, metric: sweep.metric, direction: sweep.direction)
        guard let featured = trials.first else {
            throw CriaError("\(runDirectory.path): no finished trial (summary.json with status finished) to export")
        }
        var cells = Cells()
        let runPath = relativePath(from: output.deletingLastPathComponent(), to: runDirectory)

        let name = featured.experiment.nonEmpty ?? runDirectory.lastPathComponent
        var intro = "# \(name)\n\nExported by Cria from `\(runDirectory.path)`"
        if let version = featured.criaVersion { intro += " (Cria \(version)" + (featured.gitCommit.map { ", commit `\($0)`" } ?? "") + ")" }
        intro += ".\n\n"
        intro += isTrial ? "This notebook follows one trial, `\(featured.trialID)`.\n"
            : "\(trials.count) finished trials\(sweep.total.map { " of \($0)" } ?? ""); the featured trial is the best by `\(sweep.metric)`: `\(featured.trialID)`.\n"
        cells.markdown(intro)

        let configURL = featured.directory.appendingPathComponent("config.resolved.yaml")
        let config = (try? String(contentsOf: configURL, encoding: .utf8)) ?? "# config.resolved.yaml is missing from this trial\n"
        var configText = "## Config\n\nThe resolved config of `\(featured.trialID)` (every default filled in):\n\n```yaml\n\(config.hasSuffix("\n") ? config : config + "\n")```\n"
        if !featured.parameters.isEmpty {
            configText += "\nSweep parameters of this trial: " + featured.parameters.keys.sorted()
                .map { "`\($0)` = \(TrialSummary.format(featured.parameters[$0]!))" }.joined(separator: ", ") + ".\n"
        }
        cells.markdown(configText)
        cells.markdown(datasetMarkdown(featured))

        cells.markdown("""
            ## Learning curves

            Training and validation accuracy and loss of `\(featured.trialID)`, as in the Keras transfer-learning tutorial. \
            The "Start Fine Tuning" line marks the last frozen epoch (the tutorial draws it at `initial_epochs - 1`).
            """)
        let trialPath = isTrial ? "RUN_DIR" : "RUN_DIR / \(pythonString(featured.directory.lastPathComponent))"
        cells.code("""
            from pathlib import Path
            RUN_DIR = Path(\(pythonString(runPath)))
            TRIAL_DIR = \(trialPath)
            FINE_TUNE_START = \(featured.fineTuneStartEpoch.map(String.init) ?? "None")  # first epoch of the first unfrozen phase
            """)
        let curves = (try? String(contentsOf: featured.directory.appendingPathComponent("curves.svg"), encoding: .utf8))
            ?? CurvesFigure.svg(records: featured.records, fineTuneStartEpoch: featured.fineTuneStartEpoch, title: featured.trialID)
        cells.code("from IPython.display import SVG, display\ndisplay(SVG(filename=str(TRIAL_DIR / \"curves.svg\")))", svg: curves)

        if !isTrial {
            cells.markdown("## Frozen vs fine-tuned\n\nValidation accuracy of every trial, frozen-only dashed grey, fine-tuned coloured by depth.")
            let comparison = ComparisonFigure.svg(trials: trials, title: runDirectory.lastPathComponent)
            // comparison.svg is written when a sweep finishes (or by `cria report`); a notebook
            // exported from an unfinished sweep still runs, and says how to get the figure.
            cells.code("""
                figure = RUN_DIR / "comparison.svg"
                if figure.exists():
                    display(SVG(filename=str(figure)))
                else:
                    print(f"{figure} is not written yet: run `cria report {RUN_DIR}`")
                """, svg: comparison)
            let sections = RunComparison.sections(trials)
            cells.markdown(demoteHeadings(RunComparison.markdown(sections, sources: [runDirectory])))
            let summary = ExperimentReport.markdown(trials, unfinished: unfinished, sweep: sweep, directory: runDirectory)
            cells.markdown("## Summary\n\n" + demoteHeadings(dropFirstHeading(summary)).replacingOccurrences(of: "](comparison.svg)", with: "](\(runPath)/comparison.svg)"))
        } else {
            cells.markdown(trialSummaryMarkdown(featured))
        }

        cells.markdown("""
            ## Re-plot from metrics.csv

            `metrics.csv` has Keras CSVLogger's columns. `accuracy` is the correct figure (logit > 0); \
            `keras_accuracy` is what Keras's `metrics=["accuracy"]` reports for a one-logit head (a 0.5 threshold on logits), kept for comparison.
            """)
        cells.code("""
            import pandas as pd
            import matplotlib.pyplot as plt

            metrics = pd.read_csv(TRIAL_DIR / "metrics.csv")
            acc, val_acc = metrics["accuracy"], metrics["val_accuracy"]
            loss, val_loss = metrics["loss"], metrics["val_loss"]
            epochs = metrics["epoch"]

            plt.figure(figsize=(8, 8))
            plt.subplot(2, 1, 1)
            plt.plot(epochs, acc, label="Training Accuracy")
            plt.plot(epochs, val_acc, label="Validation Accuracy")
            plt.ylim([min(0.8, acc.min(), val_acc.min()), 1])
            if FINE_TUNE_START is not None:
                plt.plot([FINE_TUNE_START - 1, FINE_TUNE_START - 1], plt.ylim(), label="Start Fine Tuning")
            plt.legend(loc="lower right")
            plt.title("Training and Validation Accuracy")

            plt.subplot(2, 1, 2)
            plt.plot(epochs, loss, label="Training Loss")
            plt.plot(epochs, val_loss, label="Validation Loss")
            plt.ylim([0, max(1.0, loss.max(), val_loss.max())])
            if FINE_TUNE_START is not None:
                plt.plot([FINE_TUNE_START - 1, FINE_TUNE_START - 1], plt.ylim(), label="Start Fine Tuning")
            plt.legend(loc="upper right")
            plt.title("Training and Validation Loss")
            plt.xlabel("epoch")
            plt.show()
            """)
        cells.code("metrics[[\"epoch\", \"phase\", \"accuracy\", \"keras_accuracy\", \"val_accuracy\", \"val_keras_accuracy\", \"learning_rate\"]]")
        if !isTrial {
            cells.code("""
                summary = pd.read_csv(RUN_DIR / "summary.csv")
                plt.figure(figsize=(9, 5))
                for trial_dir in sorted(p for p in RUN_DIR.iterdir() if (p / "metrics.csv").exists()):
                    m = pd.read_csv(trial_dir / "metrics.csv")
                    plt.plot(m["epoch"], m["val_accuracy"], alpha=0.7, label=trial_dir.name)
                plt.xlabel("epoch"); plt.ylabel("val_accuracy"); plt.title("Validation accuracy of every trial")
                if len(summary) <= 12:
                    plt.legend(fontsize=7)
                plt.show()
                summary
                """)
        }
        return [
            "cells": .array(cells.items),
            "metadata": [
                "kernelspec": ["display_name": "Python 3", "language": "python", "name": "python3"],
                "language_info": ["name": "python"],
            ],
            "nbformat": 4,
            "nbformat_minor": 5,
        ]
    }

    /// Cells with sequential ids (nbformat 4.5 requires unique ids of [a-zA-Z0-9-_]).
    struct Cells {
        var items = [JSONValue]()

        mutating func markdown(_ text: String) {
            items.append(["cell_type": "markdown", "id": .string(nextID), "metadata": [:], "source": NotebookExport.sourceLines(text)])
        }

        mutating func code(_ text: String, svg: String? = nil) {
            var outputs = [JSONValue]()
            if let svg {
                outputs.append([
                    "output_type": "display_data",
                    "data": ["image/svg+xml": NotebookExport.sourceLines(NotebookExport.svgElement(svg)),
                             "text/plain": ["<IPython.core.display.SVG object>"]],
                    "metadata": [:],
                ])
            }
            items.append(["cell_type": "code", "id": .string(nextID), "metadata": [:], "execution_count": nil,
                          "outputs": .array(outputs), "source": NotebookExport.sourceLines(text)])
        }

        private var nextID: String { String(format: "cria-%02d", items.count + 1) }
    }

    /// Jupyter's convention: a list of lines, each but the last ending in a newline.
    static func sourceLines(_ text: String) -> JSONValue {
        var lines = [JSONValue]()
        var current = ""
        for character in text {
            current.append(character)
            if character == "\n" { lines.append(.string(current)); current = "" }
        }
        if !current.isEmpty { lines.append(.string(current)) }
        return .array(lines)
    }

    /// The `<svg>` element alone, as IPython's SVG display stores it (no XML declaration).
    static func svgElement(_ svg: String) -> String {
        guard let start = svg.range(of: "<svg") else { return svg }
        return String(svg[start.lowerBound...])
    }

    static func datasetMarkdown(_ trial: TrialSummary) -> String {
        var out = "## Dataset\n\n"
        guard let dataset = trial.dataset else { return out + "No dataset summary in summary.json.\n" }
        if let directory = dataset.directory { out += "Directory: `\(directory)`.  \n" }
        if let train = dataset.trainCount, let val = dataset.valCount {
            let fraction = train + val > 0 ? String(format: " (validation split %.0f%%)", Double(val) / Double(train + val) * 100) : ""
            out += "Split: \(train) training and \(val) validation images\(fraction).\n\n"
        }
        var names = trial.classNames
        if names.isEmpty { names = dataset.classCountsTrain.keys.sorted() }
        if !names.isEmpty {
            let rows = names.map { name in
                [name, dataset.classCountsTrain[name].map(String.init) ?? "", dataset.classCountsVal[name].map(String.init) ?? ""]
            }
            out += ExperimentReport.table(["class", "train", "validation"], rows)
        }
        return out
    }

    static func trialSummaryMarkdown(_ trial: TrialSummary) -> String {
        var out = "## Summary\n\n"
        var rows: [[String]] = [
            ["best val accuracy (epoch)", ExperimentReport.fixed(trial.bestValAccuracy) + (trial.bestEpoch.map { " (\($0))" } ?? "")],
            ["final val accuracy", ExperimentReport.fixed(trial.finalValAccuracy)],
            ["final val loss", ExperimentReport.fixed(trial.finalValLoss)],
            ["final training accuracy", ExperimentReport.fixed(trial.finalAccuracy)],
            ["val accuracy at the end of the frozen phase", ExperimentReport.fixed(trial.frozenPhaseValAccuracy)],
        ]
        if let probe = trial.linearProbeValAccuracy { rows.append(["linear probe val accuracy", ExperimentReport.fixed(probe)]) }
        rows.append(["wall time", ExperimentReport.duration(trial.wallSeconds)])
        out += ExperimentReport.table(["", "value"], rows) + "\n"
        if !trial.phases.isEmpty {
            out += "### Phases\n\n" + ExperimentReport.table(["phase", "type", "epochs", "first epoch", "freezing", "optimizer", "lr"], trial.phases.map {
                [$0.name, $0.type.rawValue, String($0.epochs), String($0.firstEpoch), $0.freezing.description, $0.optimizer,
                 $0.learningRate.map(PythonFloat.repr) ?? ""]
            }) + "\n"
        }
        if let test = trial.test {
            out += "### Test set\n\nLoss \(ExperimentReport.fixed(test.loss)), accuracy \(ExperimentReport.fixed(test.accuracy)).\n\n"
            if !test.perClass.isEmpty {
                out += ExperimentReport.table(["class", "precision", "recall"], test.perClass.map {
                    [$0.name, ExperimentReport.fixed($0.precision), ExperimentReport.fixed($0.recall)]
                }) + "\n"
            }
            if !test.confusion.isEmpty {
                let names = trial.classNames.count == test.confusion.count ? trial.classNames : test.confusion.indices.map(String.init)
                out += "Confusion matrix (rows: true class, columns: predicted):\n\n"
                out += ExperimentReport.table(["true \\ predicted"] + names, test.confusion.enumerated().map { [names[$0.offset]] + $0.element.map(String.init) })
            }
        }
        return out
    }

    static func dropFirstHeading(_ markdown: String) -> String {
        guard markdown.hasPrefix("# "), let end = markdown.firstIndex(of: "\n") else { return markdown }
        return String(markdown[markdown.index(after: end)...]).trimmingCharacters(in: .newlines) + "\n"
    }

    /// One level down, so embedded reports nest under the notebook's own sections.
    static func demoteHeadings(_ markdown: String) -> String {
        markdown.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("#") ? "#" + $0 : String($0) }.joined(separator: "\n")
    }

    static func pythonString(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// `target` relative to `base` when they share a parent other than the root; otherwise absolute.
    static func relativePath(from base: URL, to target: URL) -> String {
        let from = base.standardizedFileURL.resolvingSymlinksInPath().pathComponents
        let to = target.standardizedFileURL.resolvingSymlinksInPath().pathComponents
        var common = 0
        while common < min(from.count, to.count), from[common] == to[common] { common += 1 }
        guard common > 1 else { return target.path }
        let parts = Array(repeating: "..", count: from.count - common) + to[common...]
        return parts.isEmpty ? "." : parts.joined(separator: "/")
    }
}
